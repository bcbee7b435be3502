//! Reflection and replication padding (after nearest ×2 upsampling), space to depth and depth
//! to space, and the row copies of banded convs.

// The ops' fields are read by their CUDA passes only.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use super::cuda_only;
#[cfg(feature = "cuda")]
use super::dims4;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// Reflection padding by `pad` of `x` `(N, C, H, W)`, after nearest upsampling by `up` (1 or 2).
pub fn remap(x: &Tensor, pad: usize, up: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if pad >= h * up || pad >= w * up || !(1..=2).contains(&up) {
        candle_core::bail!(
            "reflection padding {pad} needs a dimension larger than {}",
            h.min(w) * up
        );
    }
    x.contiguous()?.apply_op1(Remap {
        pad,
        up,
        edge: false,
    })
}

/// Replication padding by `pad` of `x` `(N, C, H, W)` (inference only: no gradient).
pub fn edge_pad(x: &Tensor, pad: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Remap {
        pad,
        up: 1,
        edge: true,
    })
}

/// Reflection padding by `pad`, then space to depth by 2: `(N, C, H, W)` → `(N, 4C, ⌈(H+2p)/2⌉,
/// ⌈(W+2p)/2⌉)`, channel `4c + 2a + b` holding the padded pixels `(2r + a, 2s + b)` of channel
/// `c` (zero past the padded image). Inference only.
pub fn reflect_pad_s2d(x: &Tensor, pad: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if pad >= h || pad >= w {
        candle_core::bail!(
            "reflection padding {pad} needs a dimension larger than {}",
            h.min(w)
        );
    }
    if n * c > 65535 {
        candle_core::bail!("reflect_pad_s2d: {n}×{c} planes exceed one launch");
    }
    x.contiguous()?.apply_op1_no_bwd(&PadS2d { pad })
}

/// Depth to space by 2: `(N, 4C, H, W)` → `(N, C, 2H, 2W)`, output channel `c` at
/// `(2i + a, 2j + b)` taken from input channel `4c + 2a + b` at `(i, j)` (inference only).
pub fn depth_to_space2(x: &Tensor) -> Result<Tensor> {
    let (_, c4, _, _) = x.dims4()?;
    if c4 % 4 != 0 {
        candle_core::bail!("depth_to_space2: {c4} channels are not a multiple of 4");
    }
    x.contiguous()?.apply_op1_no_bwd(&DepthToSpace)
}

/// The half-precision network's last step: depth to space by 2 of `x` `(N, 4C, H, W)` (f16)
/// into an f32 image `(N, C, out_h, out_w)` (at most `2H`×`2W`, cropping), plus `bias` (f32,
/// one value per output channel). One pass instead of depth to space, a crop, a bias add and a
/// conversion (inference only).
pub fn depth_to_space2_out(
    x: &Tensor,
    bias: &Tensor,
    out_h: usize,
    out_w: usize,
) -> Result<Tensor> {
    let (_, c4, h, w) = x.dims4()?;
    if c4 % 4 != 0 || x.dtype() != DType::F16 || out_h > 2 * h || out_w > 2 * w {
        candle_core::bail!(
            "depth_to_space2_out: {:?} {:?} cannot give {out_h}×{out_w}",
            x.dims(),
            x.dtype()
        );
    }
    if bias.elem_count() != c4 / 4 {
        candle_core::bail!(
            "depth_to_space2_out: {:?} bias for {} channels",
            bias.dims(),
            c4 / 4
        );
    }
    let n = x.dim(0)?;
    if n * c4 / 4 > 65535 || c4 * h * w > i32::MAX as usize {
        candle_core::bail!(
            "depth_to_space2_out: {:?} is too large for one launch",
            x.dims()
        );
    }
    x.contiguous()?.apply_op2_no_bwd(
        &bias.to_dtype(DType::F32)?.contiguous()?,
        &DepthToSpaceOut { out_h, out_w },
    )
}

struct Remap {
    pad: usize,
    up: usize,
    /// Replication instead of reflection (forward only).
    edge: bool,
}

struct DepthToSpace;

struct DepthToSpaceOut {
    out_h: usize,
    out_w: usize,
}

impl CustomOp2 for DepthToSpaceOut {
    fn name(&self) -> &'static str {
        "atelier-depth-to-space-out"
    }
    no_cpu_pass!(2);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c4, h, w) = dims4(l1)?;
        let c = c4 / 4;
        let out = gpu::d2s_out(s1, l1, s2, l2, (n, c, h, w), (self.out_h, self.out_w))?;
        Ok((out, Shape::from((n, c, self.out_h, self.out_w))))
    }
}

struct PadS2d {
    pad: usize,
}

impl CustomOp1 for PadS2d {
    fn name(&self) -> &'static str {
        "atelier-pad-s2d"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l)?;
        let (sh, sw) = (
            (h + 2 * self.pad).div_ceil(2),
            (w + 2 * self.pad).div_ceil(2),
        );
        let out = gpu::pad_s2d(s, l, n * c, (h, w), self.pad, (sh, sw))?;
        Ok((out, Shape::from((n, 4 * c, sh, sw))))
    }
}

struct RemapBwd {
    pad: usize,
    up: usize,
    h: usize,
    w: usize,
}

impl CustomOp1 for Remap {
    fn name(&self) -> &'static str {
        "atelier-remap"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l)?;
        let (oh, ow) = (h * self.up + 2 * self.pad, w * self.up + 2 * self.pad);
        let out = if self.edge {
            gpu::edge_pad(s, l, n * c, h, w, self.pad)?
        } else {
            gpu::remap(s, l, n * c, h, w, self.pad, self.up, false)?
        };
        Ok((out, Shape::from((n, c, oh, ow))))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let op = RemapBwd {
            pad: self.pad,
            up: self.up,
            h,
            w,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

impl CustomOp1 for DepthToSpace {
    fn name(&self) -> &'static str {
        "atelier-depth-to-space"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c4, h, w) = dims4(l)?;
        let out = gpu::depth_to_space2(s, l, n * c4 / 4, h, w)?;
        Ok((out, Shape::from((n, c4 / 4, 2 * h, 2 * w))))
    }
}

impl CustomOp1 for RemapBwd {
    fn name(&self) -> &'static str {
        "atelier-remap-bwd"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, _, _) = dims4(l)?;
        let out = gpu::remap(s, l, n * c, self.h, self.w, self.pad, self.up, true)?;
        Ok((out, Shape::from((n, c, self.h, self.w))))
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod gpu {
    use super::super::gpu::*;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaDevice, CudaStorage, Layout, Result};
    use half::f16;

    #[allow(clippy::too_many_arguments)]
    pub fn remap(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
        pad: usize,
        up: usize,
        backward: bool,
    ) -> Result<CudaStorage> {
        let half = kernel_for(s, "remap", if backward { "" } else { "remap_fwd_h" })?;
        let geom = (h, w, pad, up, false);
        if half {
            remap_t::<f16>(s, l, planes, geom, "remap_fwd_h")
        } else if backward {
            remap_t::<f32>(s, l, planes, geom, "remap_bwd")
        } else {
            remap_t::<f32>(s, l, planes, geom, "remap_fwd")
        }
    }

    pub fn edge_pad(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
        pad: usize,
    ) -> Result<CudaStorage> {
        if kernel_for(s, "edge_pad", "remap_fwd_h")? {
            remap_t::<f16>(s, l, planes, (h, w, pad, 1, true), "remap_fwd_h")
        } else {
            remap_t::<f32>(s, l, planes, (h, w, pad, 1, true), "remap_fwd")
        }
    }

    fn remap_t<T: CudaDType + DeviceRepr>(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        (h, w, pad, up, edge): (usize, usize, usize, usize, bool),
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s);
        let src = view_as::<T>(s, l)?;
        let backward = kernel == "remap_bwd";
        let total = if backward {
            planes * h * w
        } else {
            planes * (h * up + 2 * pad) * (w * up + 2 * pad)
        };
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let (p, h, w, pad, up) = (planes as i64, h as i32, w as i32, pad as i32, up as i32);
        if backward {
            launch!(d, kernel, flat(total), &src, &out, &p, &h, &w, &pad, &up);
        } else {
            let edge = edge as i32;
            launch!(
                d,
                kernel,
                planar(planes, (h * up + 2 * pad) as usize, total / planes.max(1)),
                &src,
                &out,
                &p,
                &h,
                &w,
                &pad,
                &up,
                &edge
            );
        }
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn pad_s2d(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        (h, w): (usize, usize),
        pad: usize,
        (sh, sw): (usize, usize),
    ) -> Result<CudaStorage> {
        if kernel_for(s, "pad_s2d", "pad_s2d_h")? {
            pad_s2d_t::<f16>(s, l, planes, (h, w), pad, (sh, sw), "pad_s2d_h")
        } else {
            pad_s2d_t::<f32>(s, l, planes, (h, w), pad, (sh, sw), "pad_s2d")
        }
    }

    fn pad_s2d_t<T: CudaDType + DeviceRepr>(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        (h, w): (usize, usize),
        pad: usize,
        (sh, sw): (usize, usize),
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s);
        let src = view_as::<T>(s, l)?;
        let per_plane = 4 * sh * sw;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(planes * per_plane)? };
        let cfg = by_rows(planes, 4 * sh);
        let (h, w, pad) = (h as i32, w as i32, pad as i32);
        launch!(d, kernel, cfg, &src, &out, &h, &w, &pad);
        Ok(T::wrap_cuda_slice(out, d))
    }

    /// `planes` output planes of `2h`×`2w` from `4·planes` input planes of `h`×`w`.
    pub fn depth_to_space2(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
    ) -> Result<CudaStorage> {
        let half = kernel_for(s, "depth_to_space2", "d2s_h")?;
        if half {
            d2s_t::<f16>(s, l, planes, h, w, "d2s_h")
        } else {
            d2s_t::<f32>(s, l, planes, h, w, "d2s")
        }
    }

    fn d2s_t<T: CudaDType + DeviceRepr>(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s);
        let src = view_as::<T>(s, l)?;
        let total = planes * 4 * h * w;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let (p, h, w) = (planes as i64, h as i32, w as i32);
        launch!(
            d,
            kernel,
            planar(planes, 2 * h as usize, total / planes.max(1)),
            &src,
            &out,
            &p,
            &h,
            &w
        );
        Ok(T::wrap_cuda_slice(out, d))
    }

    /// Copies `rows` rows of each of `planes` planes of width `w` between two device buffers
    /// (see `copy_rows` in pad.cu); `(src_h, src_r0)` and `(dst_h, dst_r0)` are each
    /// side's plane height and first row.
    ///
    /// # Safety
    /// `src` and `dst` must be device pointers to buffers of `planes` planes of the given
    /// heights and width `w`, of f16 (`half`) or f32 elements, live until the copy has run.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn copy_rows_raw(
        d: &CudaDevice,
        half: bool,
        (src, dst): (u64, u64),
        planes: usize,
        w: usize,
        rows: usize,
        (src_h, src_r0): (usize, usize),
        (dst_h, dst_r0): (usize, usize),
    ) -> Result<()> {
        let kernel = if half { "copy_rows_h" } else { "copy_rows" };
        let [sh, dh, w, r, s0, d0] = [src_h, dst_h, w, rows, src_r0, dst_r0].map(|v| v as i32);
        launch!(
            d,
            kernel,
            by_rows(planes, rows),
            &src,
            &dst,
            &sh,
            &dh,
            &w,
            &r,
            &s0,
            &d0
        );
        Ok(())
    }

    pub fn d2s_out(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        (n, c, h, w): (usize, usize, usize, usize),
        (oh, ow): (usize, usize),
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (x, b) = (view_as::<f16>(s1, l1)?, view(s2, l2)?);
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<f32>(n * c * oh * ow)? };
        let (ci, h, w, ohi, owi) = (c as i32, h as i32, w as i32, oh as i32, ow as i32);
        launch!(
            d,
            "d2s_out_h",
            by_rows(n * c, oh),
            &x,
            &out,
            &b,
            &ci,
            &h,
            &w,
            &ohi,
            &owi
        );
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }
}
