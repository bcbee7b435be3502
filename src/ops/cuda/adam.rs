//! The Adam update, in place.

// The ops' fields are read by their CUDA passes only.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use super::cuda_only;
use candle_core::{CpuStorage, Layout, Result, Tensor};

/// One Adam step for the CUDA f32 parameter `p` with gradient `g`, updating `p` and the
/// moment estimates `m` and `v` in place (three kernels; candle's ops take about twelve). The
/// arithmetic is the f32 arithmetic of the composed update in [`crate::ops::adam::step`].
/// `m` and `v` must not share storage with each other (candle refuses an in-place op whose
/// operand shares the written tensor's storage, but cannot see that m and v alias).
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    p: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    (beta1, beta2, eps): (f64, f64, f64),
    lr: f64,
    (c1, c2): (f64, f64),
) -> Result<()> {
    let g = g.contiguous()?;
    m.inplace_op2(
        &g,
        &AdamMoment {
            beta: beta1,
            square: false,
        },
    )?;
    v.inplace_op2(
        &g,
        &AdamMoment {
            beta: beta2,
            square: true,
        },
    )?;
    p.inplace_op3(m, v, &AdamUpdate { lr, c1, c2, eps })
}

struct AdamMoment {
    beta: f64,
    square: bool,
}

struct AdamUpdate {
    lr: f64,
    c1: f64,
    c2: f64,
    eps: f64,
}

impl candle_core::InplaceOp2 for AdamMoment {
    fn name(&self) -> &'static str {
        "atelier-adam-moment"
    }
    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
        Err(cuda_only(self.name()))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        gpu::adam_moment(s1, l1, s2, l2, self.beta as f32, self.square)
    }
}

impl candle_core::InplaceOp3 for AdamUpdate {
    fn name(&self) -> &'static str {
        "atelier-adam-update"
    }
    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<()> {
        Err(cuda_only(self.name()))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        let f = |v: f64| v as f32;
        gpu::adam_update(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            [f(self.lr), f(self.c1), f(self.c2), f(self.eps)],
        )
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod gpu {
    use super::super::gpu::*;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaStorage, Layout, Result};

    pub fn adam_moment(
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        beta: f32,
        square: bool,
    ) -> Result<()> {
        let d = dev(s1);
        let n = l1.shape().elem_count();
        if l2.shape().elem_count() != n {
            candle_core::bail!("adam: gradient and moment sizes differ");
        }
        let g = view(s2, l2)?;
        let mut a = view_mut(s1, l1)?;
        let (n_i, sq) = (n as i64, square as i32);
        launch!(d, "adam_moment", flat(n), &mut a, &g, &n_i, &beta, &sq);
        Ok(())
    }

    pub fn adam_update(
        (s1, l1): (&mut CudaStorage, &Layout),
        (s2, l2): Operand,
        (s3, l3): Operand,
        [lr, c1, c2, eps]: [f32; 4],
    ) -> Result<()> {
        let d = dev(s1);
        let n = l1.shape().elem_count();
        if l2.shape().elem_count() != n || l3.shape().elem_count() != n {
            candle_core::bail!("adam: parameter and moment sizes differ");
        }
        let (m, v) = (view(s2, l2)?, view(s3, l3)?);
        let mut p = view_mut(s1, l1)?;
        let n_i = n as i64;
        launch!(
            d,
            "adam_update",
            flat(n),
            &mut p,
            &m,
            &v,
            &n_i,
            &lr,
            &c1,
            &c2,
            &eps
        );
        Ok(())
    }
}
