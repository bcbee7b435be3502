//! Fused CUDA kernels for the layers whose candle compositions cost the most launches and
//! memory passes when training: instance norm (+ ReLU), reflection padding (with nearest ×2
//! upsampling), VGG16's bias + ReLU and 2×2 max pooling, and the Adam update. Each is a candle
//! custom op whose
//! forward and backward passes are one or a few kernels (`cuda_ops.cu`, compiled at run time
//! with NVRTC), where candle's composition runs 5–20 kernels forward and, through its autograd
//! (which also zero-fills and adds every gradient it accumulates), several times that backward.
//!
//! Used only on CUDA for f32 tensors ([`available`]); `ATELIER_FUSED=0` switches back to the
//! candle compositions. The CPU never takes these ops (their CPU passes refuse), so CPU
//! inference and the CPU gradient tests run exactly as before; `examples/cuda_check.rs`
//! checks them on the GPU against the CPU compositions in f64.

// The ops' fields and helpers are read by their CUDA passes only.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

/// Whether the fused ops run `x`: CUDA builds, a CUDA f32 tensor, not `ATELIER_FUSED=0`.
pub fn available(x: &Tensor) -> bool {
    cfg!(feature = "cuda") && x.device().is_cuda() && x.dtype() == DType::F32 && enabled_by_env()
}

/// Whether [`bias_relu`] and [`max_pool2`] run `x`, forward and backward: as [`available`], and
/// also in half precision (f16 or bf16: the loss network in mixed-precision training).
pub fn available_half_too(x: &Tensor) -> bool {
    cfg!(feature = "cuda")
        && x.device().is_cuda()
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && enabled_by_env()
}

/// Whether [`remap`] and [`instance_norm`] run `x`: as [`available`], and also for f16 tensors
/// outside autograd (half-precision inference; those ops have no f16 backward).
pub fn available_for_inference(x: &Tensor) -> bool {
    available(x)
        || (cfg!(feature = "cuda")
            && x.device().is_cuda()
            && x.dtype() == DType::F16
            && !x.track_op()
            && enabled_by_env())
}

fn enabled_by_env() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("ATELIER_FUSED").map_or(true, |v| v != "0"))
}

fn cuda_only(name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name} runs on CUDA only"))
}

/// The CPU pass of a custom op with 1, 2 or 3 operands: these ops run on CUDA only (callers
/// check [`available`] first), so reaching it is a bug reported as an error.
macro_rules! no_cpu_pass {
    (1) => {
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            Err(cuda_only(self.name()))
        }
    };
    (2) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            Err(cuda_only(self.name()))
        }
    };
    (3) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            Err(cuda_only(self.name()))
        }
    };
}

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

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

/// 2×2 max pooling with stride 2 of `x` `(N, C, H, W)`; gradients go to each window's first
/// maximum.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2)
}

/// The gradient of [`max_pool2`] with respect to its input `x`, from the output gradient `grad`
/// (outside autograd: the loss network's hand-written backward pass).
pub fn max_pool2_grad(x: &Tensor, grad: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Bwd)
}

/// `grad` where the ReLU output `y` is positive, else 0: the gradient through a ReLU (outside
/// autograd).
pub fn relu_grad(y: &Tensor, grad: &Tensor) -> Result<Tensor> {
    y.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &ReluBwd)
}

/// `relu(x + b)` with `b` one value per channel of `x` `(N, C, H, W)`.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if b.elem_count() != c || b.dtype() != DType::F32 {
        candle_core::bail!("bias_relu: {:?} bias for {c} channels", b.dims());
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasRelu)
}

/// Instance norm with per-image statistics (biased variance) and affine `gamma`/`beta`
/// (one value per channel, f32), then ReLU if `relu`.
pub fn instance_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    if gamma.elem_count() != c || beta.elem_count() != c {
        candle_core::bail!("instance_norm: affine parameters do not have {c} channels");
    }
    // The kernels take f32 affine parameters: f16 models are converted here (a few hundred
    // values), and f16 inputs are inference only, so there is no gradient to route back.
    let (gamma, beta) = if x.dtype() == DType::F16 {
        if gamma.track_op() || beta.track_op() {
            candle_core::bail!("instance_norm: f16 runs inference only");
        }
        (gamma.to_dtype(DType::F32)?, beta.to_dtype(DType::F32)?)
    } else {
        (gamma.clone(), beta.clone())
    };
    if n * c > 65535 {
        candle_core::bail!("instance_norm: {n}×{c} planes exceed one launch");
    }
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        InstanceNormOp { eps, relu },
    )
}

/// `residual + instance_norm(x)` without ReLU in one pass (the residual blocks' second norm
/// and skip connection), for f16 inference; `params` is `[γ; β]` in f32. `None` where this
/// fused path does not apply (other dtypes, plane sizes not a multiple of 8): the caller
/// composes the two steps instead.
pub fn instance_norm_add(
    x: &Tensor,
    params: &Tensor,
    eps: f64,
    residual: &Tensor,
) -> Result<Option<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fits = available_for_inference(x)
        && x.dtype() == DType::F16
        && residual.dtype() == DType::F16
        && residual.dims() == x.dims()
        && params.dtype() == DType::F32
        && params.elem_count() == 2 * c
        && (h * w).is_multiple_of(8)
        && n * c <= 65535;
    if !fits {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op3_no_bwd(
            &params.contiguous()?,
            &residual.contiguous()?,
            &InstanceNormAddOp { eps },
        )
        .map(Some)
}

/// Mean and biased variance of every plane of an f16 `x` `(N, C, H, W)`, as `(N, C, 2)` f32, in
/// one pass (the instance norm's statistics kernel). `None` where the fast path does not apply.
pub fn plane_moments(x: &Tensor) -> Result<Option<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fits = available_for_inference(x)
        && x.dtype() == DType::F16
        && (h * w).is_multiple_of(8)
        && n * c <= 65535;
    if !fits {
        return Ok(None);
    }
    x.contiguous()?.apply_op1_no_bwd(&PlaneMoments).map(Some)
}

/// `max?(x · scale + shift)` per plane of an f16 `x`, with `ss` the `(N·C, 2)` f32 scales and
/// shifts: an instance norm whose statistics came from elsewhere. `None` where the fast path
/// does not apply.
pub fn scale_shift(x: &Tensor, ss: &Tensor, relu: bool) -> Result<Option<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fits = available_for_inference(x)
        && x.dtype() == DType::F16
        && (h * w).is_multiple_of(8)
        && ss.dtype() == DType::F32
        && ss.elem_count() == 2 * n * c;
    if !fits {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op2_no_bwd(&ss.contiguous()?, &ScaleShift { relu })
        .map(Some)
}

/// One Adam step for the CUDA f32 parameter `p` with gradient `g`, updating `p` and the
/// moment estimates `m` and `v` in place (three kernels; candle's ops take about twelve). The
/// arithmetic is the f32 arithmetic of [`crate::train::adam::Adam`]'s composed update. `m` and
/// `v` must not share storage with each other (candle refuses an in-place op whose operand
/// shares the written tensor's storage, but cannot see that m and v alias).
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

struct MaxPool2;
struct MaxPool2Bwd;
struct BiasRelu;
struct ReluBwd;

struct InstanceNormOp {
    eps: f64,
    relu: bool,
}

struct PlaneMoments;

impl CustomOp1 for PlaneMoments {
    fn name(&self) -> &'static str {
        "atelier-plane-moments"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l)?;
        let out = gpu::plane_moments_h8((s, l), n * c, h * w)?;
        Ok((out, Shape::from((n, c, 2))))
    }
}

struct ScaleShift {
    relu: bool,
}

impl CustomOp2 for ScaleShift {
    fn name(&self) -> &'static str {
        "atelier-scale-shift"
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
        let (n, c, h, w) = dims4(l1)?;
        if !l1.start_offset().is_multiple_of(8) {
            candle_core::bail!("scale_shift: the input must start on a 16-byte boundary");
        }
        let out = gpu::scale_shift_h8((s1, l1), (s2, l2), n * c * h * w, h * w, self.relu)?;
        Ok((out, l1.shape().clone()))
    }
}

/// Inputs `(x, [γ; β], residual)`; output `residual + norm(x)` (inference only).
struct InstanceNormAddOp {
    eps: f64,
}

impl CustomOp3 for InstanceNormAddOp {
    fn name(&self) -> &'static str {
        "atelier-instance-norm-add"
    }
    no_cpu_pass!(3);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        if !l1.start_offset().is_multiple_of(8) || !l3.start_offset().is_multiple_of(8) {
            candle_core::bail!("instance_norm_add: operands must start on 16-byte boundaries");
        }
        let out = gpu::instance_norm_add_h8((s1, l1), (s2, l2), (s3, l3), (n, c, h * w), self.eps)?;
        Ok((out, l1.shape().clone()))
    }
}

/// Inputs `(x, dy, [γ; β])`; output `dx` followed by `dγ` and `dβ`, flat.
struct InstanceNormBwd {
    eps: f64,
    relu: bool,
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

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "atelier-maxpool2"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l)?;
        let out = gpu::maxpool2_fwd(s, l, n * c, h, w)?;
        Ok((out, Shape::from((n, c, h / 2, w / 2))))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Bwd)?,
        ))
    }
}

impl CustomOp2 for MaxPool2Bwd {
    fn name(&self) -> &'static str {
        "atelier-maxpool2-bwd"
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
        let (n, c, h, w) = dims4(l1)?;
        let out = gpu::maxpool2_bwd(s1, l1, s2, l2, n * c, h, w)?;
        Ok((out, l1.shape().clone()))
    }
}

impl CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "atelier-bias-relu"
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
        let (_, c, h, w) = dims4(l1)?;
        let out = gpu::bias_relu(s1, l1, s2, l2, c, h * w)?;
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = y.apply_op2_no_bwd(&grad.contiguous()?, &ReluBwd)?;
        let gb = if b.track_op() {
            Some(gx.sum_keepdim((0, 2, 3))?.reshape(b.shape())?)
        } else {
            None
        };
        Ok((x.track_op().then_some(gx), gb))
    }
}

impl CustomOp2 for ReluBwd {
    fn name(&self) -> &'static str {
        "atelier-relu-bwd"
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
        let out = gpu::relu_bwd(s1, l1, s2, l2)?;
        Ok((out, l1.shape().clone()))
    }
}

impl CustomOp3 for InstanceNormOp {
    fn name(&self) -> &'static str {
        "atelier-instance-norm"
    }
    no_cpu_pass!(3);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let out = gpu::instance_norm(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            (n, c, h * w),
            self.eps,
            self.relu,
        )?;
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let params = Tensor::cat(
            &[gamma.detach().flatten_all()?, beta.detach().flatten_all()?],
            0,
        )?;
        let op = InstanceNormBwd {
            eps: self.eps,
            relu: self.relu,
        };
        let packed = x.apply_op3_no_bwd(&grad.contiguous()?, &params, &op)?;
        let (total, c) = (x.elem_count(), gamma.elem_count());
        let gx = packed.narrow(0, 0, total)?.reshape(x.shape())?;
        let gg = packed.narrow(0, total, c)?.reshape(gamma.shape())?;
        let gb = packed.narrow(0, total + c, c)?.reshape(beta.shape())?;
        Ok((
            x.track_op().then_some(gx),
            gamma.track_op().then_some(gg),
            beta.track_op().then_some(gb),
        ))
    }
}

impl CustomOp3 for InstanceNormBwd {
    fn name(&self) -> &'static str {
        "atelier-instance-norm-bwd"
    }
    no_cpu_pass!(3);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let out = gpu::instance_norm_bwd(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            (n, c, h * w),
            self.eps,
            self.relu,
        )?;
        Ok((out, Shape::from(n * c * h * w + 2 * c)))
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod gpu {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::DeviceRepr;
    use candle_core::cuda_backend::cudarc::driver::{CudaView, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result};
    use half::{bf16, f16};

    const SRC: &str = include_str!("cuda_ops.cu");
    const THREADS: u32 = 256;
    /// Elements of one plane that one block of the statistics kernels reduces.
    const CHUNK: usize = 4096;

    /// The kernels' PTX, compiled once per process.
    fn ptx() -> Result<&'static str> {
        static PTX: std::sync::OnceLock<std::result::Result<String, String>> =
            std::sync::OnceLock::new();
        PTX.get_or_init(|| {
            let opts = CompileOptions {
                arch: Some("compute_75"),
                ..Default::default()
            };
            compile_ptx_with_opts(SRC, opts)
                .map(|p| p.to_src())
                .map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(format!("compiling atelier's CUDA kernels: {e}")))
    }

    #[cfg(test)]
    pub fn ptx_for_tests() -> Result<&'static str> {
        ptx()
    }

    fn view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
        view_as::<f32>(s, l)
    }

    fn view_as<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
        if !l.is_contiguous() {
            candle_core::bail!("atelier CUDA kernels need contiguous inputs");
        }
        Ok(s.as_cuda_slice::<T>()?.slice(l.start_offset()..))
    }

    /// The kernel for `s`'s dtype: `name` for f32, `name_h` for f16 (forward passes only).
    fn kernel_for(s: &CudaStorage, name: &'static str, half: &'static str) -> Result<bool> {
        match s.dtype() {
            DType::F32 => Ok(false),
            DType::F16 if !half.is_empty() => Ok(true),
            other => candle_core::bail!("{name}: no kernel for {other:?}"),
        }
    }

    /// A grid-stride launch over `total` elements.
    fn flat(total: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                total.div_ceil(THREADS as usize).clamp(1, 1 << 16) as u32,
                1,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Forward copies over `planes` output planes of `hw` elements: one grid row per plane
    /// (32-bit index arithmetic in the kernel) when the planes fit the grid's y dimension.
    /// Grid (rows, planes) for the kernels that copy whole rows of one plane per block; the
    /// flat grid (their fallback branch) past the limits of a grid's y dimension.
    fn planar(planes: usize, rows: usize, hw: usize) -> LaunchConfig {
        if !(2..=65535).contains(&planes) || hw > i32::MAX as usize {
            return flat(planes * hw);
        }
        by_rows(planes, rows)
    }

    fn by_rows(planes: usize, rows: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.clamp(1, 1 << 12) as u32, planes as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One thread for each of `n` items (planes, channels) of a small per-item kernel.
    fn one_thread_each(n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(128) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block per `CHUNK` elements of each of `planes` planes of `hw` elements.
    fn per_plane(planes: usize, hw: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (hw.div_ceil(CHUNK) as u32, planes as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    macro_rules! launch {
        ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
            let func = $dev.get_or_load_custom_func($name, "atelier_ops", ptx()?)?;
            let mut b = func.builder();
            $( b.arg($arg); )*
            // Safety: the argument list matches the kernel's signature in cuda_ops.cu.
            unsafe { b.launch($cfg) }.w()?;
        }};
    }

    fn dev(s: &CudaStorage) -> CudaDevice {
        s.device.clone()
    }

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

    /// Grid (chunks of a plane, planes) for the kernels with a per-plane branch; flat past the
    /// limits of a grid's y dimension.
    fn chunks(planes: usize, hw: usize) -> LaunchConfig {
        if !(2..=65535).contains(&planes) || hw > i32::MAX as usize {
            return flat(planes * hw);
        }
        by_rows(planes, hw.div_ceil(THREADS as usize))
    }

    pub fn maxpool2_fwd(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
    ) -> Result<CudaStorage> {
        match s.dtype() {
            DType::F16 => maxpool2_fwd_t::<f16>(s, l, planes, h, w, "maxpool2_fwd_h"),
            DType::BF16 => maxpool2_fwd_t::<bf16>(s, l, planes, h, w, "maxpool2_fwd_b"),
            _ => maxpool2_fwd_t::<f32>(s, l, planes, h, w, "maxpool2_fwd"),
        }
    }

    fn maxpool2_fwd_t<T: CudaDType + DeviceRepr>(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s);
        let src = view_as::<T>(s, l)?;
        let total = planes * (h / 2) * (w / 2);
        let out = unsafe { d.alloc::<T>(total)? };
        let cfg = planar(planes, h / 2, (h / 2) * (w / 2));
        let (p, h, w) = (planes as i64, h as i32, w as i32);
        launch!(d, kernel, cfg, &src, &out, &p, &h, &w);
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn maxpool2_bwd(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        planes: usize,
        h: usize,
        w: usize,
    ) -> Result<CudaStorage> {
        let (a, b) = ((s1, l1), (s2, l2));
        match s1.dtype() {
            DType::F16 => maxpool2_bwd_t::<f16>(a, b, planes, h, w, "maxpool2_bwd_h"),
            DType::BF16 => maxpool2_bwd_t::<bf16>(a, b, planes, h, w, "maxpool2_bwd_b"),
            _ => maxpool2_bwd_t::<f32>(a, b, planes, h, w, "maxpool2_bwd"),
        }
    }

    fn maxpool2_bwd_t<T: CudaDType + DeviceRepr>(
        (s1, l1): Operand,
        (s2, l2): Operand,
        planes: usize,
        h: usize,
        w: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (x, g) = (view_as::<T>(s1, l1)?, view_as::<T>(s2, l2)?);
        let total = planes * h * w;
        let out = unsafe { d.alloc::<T>(total)? };
        let cfg = planar(planes, h, h * w);
        let (p, h, w) = (planes as i64, h as i32, w as i32);
        launch!(d, kernel, cfg, &x, &g, &out, &p, &h, &w);
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn bias_relu(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        channels: usize,
        hw: usize,
    ) -> Result<CudaStorage> {
        let (a, b) = ((s1, l1), (s2, l2));
        match s1.dtype() {
            DType::F16 => bias_relu_t::<f16>(a, b, channels, hw, "bias_relu_fwd_h"),
            DType::BF16 => bias_relu_t::<bf16>(a, b, channels, hw, "bias_relu_fwd_b"),
            _ => bias_relu_t::<f32>(a, b, channels, hw, "bias_relu_fwd"),
        }
    }

    fn bias_relu_t<T: CudaDType + DeviceRepr>(
        (s1, l1): Operand,
        (s2, l2): Operand,
        channels: usize,
        hw: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (x, b) = (view_as::<T>(s1, l1)?, view(s2, l2)?);
        let total = l1.shape().elem_count();
        let out = unsafe { d.alloc::<T>(total)? };
        let cfg = chunks(total / hw.max(1), hw);
        let (t, c, hw) = (total as i64, channels as i32, hw as i32);
        launch!(d, kernel, cfg, &x, &b, &out, &t, &c, &hw);
        Ok(T::wrap_cuda_slice(out, d))
    }

    /// Copies `rows` rows of each of `planes` planes of width `w` between two device buffers
    /// (see `copy_rows` in cuda_ops.cu); `(src_h, src_r0)` and `(dst_h, dst_r0)` are each
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

    pub fn relu_bwd(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<CudaStorage> {
        let (a, b) = ((s1, l1), (s2, l2));
        match s1.dtype() {
            DType::F16 => relu_bwd_t::<f16>(a, b, "relu_bwd_h"),
            DType::BF16 => relu_bwd_t::<bf16>(a, b, "relu_bwd_b"),
            _ => relu_bwd_t::<f32>(a, b, "relu_bwd"),
        }
    }

    fn relu_bwd_t<T: CudaDType + DeviceRepr>(
        (s1, l1): Operand,
        (s2, l2): Operand,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (y, g) = (view_as::<T>(s1, l1)?, view_as::<T>(s2, l2)?);
        let total = l1.shape().elem_count();
        let out = unsafe { d.alloc::<T>(total)? };
        let t = total as i64;
        launch!(d, kernel, flat(total), &y, &g, &out, &t);
        Ok(T::wrap_cuda_slice(out, d))
    }

    type Operand<'a> = (&'a CudaStorage, &'a Layout);

    fn view_mut<'a>(
        s: &'a mut CudaStorage,
        l: &Layout,
    ) -> Result<candle_core::cuda_backend::cudarc::driver::CudaViewMut<'a, f32>> {
        if !l.is_contiguous() {
            candle_core::bail!("atelier CUDA kernels need contiguous inputs");
        }
        Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(l.start_offset()..))
    }

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

    /// `gamma` and `beta` are f32 whatever `x`'s dtype (f32, or f16 for inference).
    pub fn instance_norm(
        x: Operand,
        gamma: Operand,
        beta: Operand,
        shape: (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        if kernel_for(x.0, "instance_norm", "in_apply_h")? {
            if shape.2.is_multiple_of(8) && x.1.start_offset().is_multiple_of(8) {
                return instance_norm_h8(x, gamma, beta, shape, eps, relu);
            }
            instance_norm_t::<f16>(
                x,
                gamma,
                beta,
                shape,
                eps,
                relu,
                ["in_stats_h", "in_apply_h"],
            )
        } else {
            instance_norm_t::<f32>(x, gamma, beta, shape, eps, relu, ["in_stats", "in_apply"])
        }
    }

    /// f16 planes of a multiple of 8 values: 16-byte loads and stores, and the moments turned
    /// into one scale and shift per plane before the element pass.
    fn instance_norm_h8(
        (sx, lx): Operand,
        (sg, lg): Operand,
        (sb, lb): Operand,
        shape: (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        let (gamma, beta) = (view(sg, lg)?, view(sb, lb)?);
        norm_h8((sx, lx), &gamma, &beta, None, shape, eps, relu)
    }

    /// `residual + norm(x)` (no ReLU), f16, planes of a multiple of 8; `params` is `[γ; β]`.
    pub fn instance_norm_add_h8(
        x: Operand,
        (sp, lp): Operand,
        res: Operand,
        shape: (usize, usize, usize),
        eps: f64,
    ) -> Result<CudaStorage> {
        let c = shape.1;
        let params = view(sp, lp)?;
        let (gamma, beta) = (params.slice(..c), params.slice(c..2 * c));
        norm_h8(x, &gamma, &beta, Some(res), shape, eps, false)
    }

    /// `(mean, var)` of each of `planes` f16 planes of `hw` values (a multiple of 8).
    pub fn plane_moments_h8((sx, lx): Operand, planes: usize, hw: usize) -> Result<CudaStorage> {
        let d = dev(sx);
        let x = view_as::<f16>(sx, lx)?;
        let stats = d.alloc_zeros::<f64>(2 * planes)?;
        let out = unsafe { d.alloc::<f32>(2 * planes)? };
        let (hw8, chunk8) = ((hw / 8) as i32, (CHUNK / 8) as i32);
        launch!(
            d,
            "in_stats_h8",
            per_plane(planes, hw),
            &x,
            &stats,
            &hw8,
            &chunk8
        );
        let (planes_i, hw_i) = (planes as i32, hw as i32);
        let cfg = one_thread_each(planes);
        launch!(d, "in_moments", cfg, &stats, &out, &planes_i, &hw_i);
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }

    /// `x · scale + shift` (then ReLU) per plane of `hw` values, `ss` holding the pairs.
    pub fn scale_shift_h8(
        (sx, lx): Operand,
        (ss_s, ss_l): Operand,
        total: usize,
        hw: usize,
        relu: bool,
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let x = view_as::<f16>(sx, lx)?;
        let ss = view(ss_s, ss_l)?;
        let out = unsafe { d.alloc::<f16>(total)? };
        let (t8, hw8, relu_i) = ((total / 8) as i64, (hw / 8) as i32, relu as i32);
        launch!(
            d,
            "in_apply_h8",
            flat(total / 8),
            &x,
            &ss,
            &out,
            &t8,
            &hw8,
            &relu_i
        );
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }

    fn norm_h8(
        (sx, lx): Operand,
        gamma: &CudaView<f32>,
        beta: &CudaView<f32>,
        residual: Option<Operand>,
        (n, c, hw): (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let x = view_as::<f16>(sx, lx)?;
        let (planes, total) = (n * c, n * c * hw);
        let stats = d.alloc_zeros::<f64>(2 * planes)?;
        let ss = unsafe { d.alloc::<f32>(2 * planes)? };
        let out = unsafe { d.alloc::<f16>(total)? };
        let (hw8, chunk8) = ((hw / 8) as i32, (CHUNK / 8) as i32);
        launch!(
            d,
            "in_stats_h8",
            per_plane(planes, hw),
            &x,
            &stats,
            &hw8,
            &chunk8
        );
        let (planes_i, c_i, hw_i) = (planes as i32, c as i32, hw as i32);
        let cfg = one_thread_each(planes);
        launch!(
            d,
            "in_scale_shift",
            cfg,
            &stats,
            gamma,
            beta,
            &ss,
            &planes_i,
            &c_i,
            &hw_i,
            &eps
        );
        let (t8, relu_i) = ((total / 8) as i64, relu as i32);
        match residual {
            Some((sr, lr)) => {
                let res = view_as::<f16>(sr, lr)?;
                launch!(
                    d,
                    "in_apply_add_h8",
                    flat(total / 8),
                    &x,
                    &ss,
                    &res,
                    &out,
                    &t8,
                    &hw8,
                    &relu_i
                );
            }
            None => launch!(
                d,
                "in_apply_h8",
                flat(total / 8),
                &x,
                &ss,
                &out,
                &t8,
                &hw8,
                &relu_i
            ),
        }
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }

    fn instance_norm_t<T: CudaDType + DeviceRepr>(
        (sx, lx): Operand,
        (sg, lg): Operand,
        (sb, lb): Operand,
        (n, c, hw): (usize, usize, usize),
        eps: f64,
        relu: bool,
        [stats_kernel, apply_kernel]: [&'static str; 2],
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let (x, gamma, beta) = (view_as::<T>(sx, lx)?, view(sg, lg)?, view(sb, lb)?);
        let (planes, total) = (n * c, n * c * hw);
        let stats = d.alloc_zeros::<f64>(2 * planes)?;
        let out = unsafe { d.alloc::<T>(total)? };
        let (hw_i, chunk) = (hw as i32, CHUNK as i32);
        launch!(
            d,
            stats_kernel,
            per_plane(planes, hw),
            &x,
            &stats,
            &hw_i,
            &chunk
        );
        let (t, c_i, relu_i) = (total as i64, c as i32, relu as i32);
        launch!(
            d,
            apply_kernel,
            flat(total),
            &x,
            &stats,
            &gamma,
            &beta,
            &out,
            &t,
            &c_i,
            &hw_i,
            &eps,
            &relu_i
        );
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn instance_norm_bwd(
        (sx, lx): Operand,
        (sg, lg): Operand,
        (sp, lp): Operand,
        (n, c, hw): (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let (x, g, params) = (view(sx, lx)?, view(sg, lg)?, view(sp, lp)?);
        let (planes, total) = (n * c, n * c * hw);
        let sums = d.alloc_zeros::<f64>(4 * planes)?;
        let out = unsafe { d.alloc::<f32>(total + 2 * c)? };
        let (c_i, hw_i, chunk, relu_i) = (c as i32, hw as i32, CHUNK as i32, relu as i32);
        let cfg = per_plane(planes, hw);
        launch!(
            d,
            "in_bwd_sums",
            cfg,
            &x,
            &g,
            &params,
            &sums,
            &c_i,
            &hw_i,
            &chunk,
            &eps,
            &relu_i
        );
        if relu {
            launch!(
                d,
                "in_bwd_masked_sums",
                cfg,
                &x,
                &g,
                &params,
                &sums,
                &c_i,
                &hw_i,
                &chunk,
                &eps
            );
        }
        let t = total as i64;
        launch!(
            d,
            "in_bwd_dx",
            flat(total),
            &x,
            &g,
            &params,
            &sums,
            &out,
            &t,
            &c_i,
            &hw_i,
            &eps,
            &relu_i
        );
        let n_i = n as i32;
        let cfg = one_thread_each(c);
        launch!(
            d,
            "in_bwd_params",
            cfg,
            &sums,
            &out,
            &t,
            &n_i,
            &c_i,
            &hw_i,
            &eps
        );
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    /// NVRTC accepts the kernels (runs without a GPU).
    #[test]
    fn kernels_compile() {
        let ptx = super::gpu::ptx_for_tests().unwrap();
        for name in [
            "remap_fwd",
            "remap_fwd_h",
            "d2s_out_h",
            "in_apply_h",
            "in_bwd_params",
            "maxpool2_bwd",
        ] {
            assert!(ptx.contains(name), "{name} missing from the PTX");
        }
    }
}
