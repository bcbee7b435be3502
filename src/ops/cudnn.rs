//! An unpadded conv2d as a candle `CustomOp2` whose forward and backward passes call cuDNN.
//!
//! candle 0.11 differentiates `conv2d` with a `conv_transpose2d` for the input gradient (a naive
//! CUDA kernel, no cuDNN) and a `conv2d` for the kernel gradient whose "kernel" is a transposed
//! (strided) view of the output gradient, which with cuDNN falls back to candle's direct conv
//! kernel. Training spent most of its time there. [`conv2d`] runs
//! `cudnnConvolutionForward`, `cudnnConvolutionBackwardData` and `cudnnConvolutionBackwardFilter`
//! instead, with the algorithm for each shape benchmarked once (`cudnnFind*`, what PyTorch's
//! `cudnn.benchmark = True` does), and skips the gradients nobody asked for (the VGG16 loss
//! network's weights, the input image).
//!
//! The CPU implementations are plain loops: they let tests check the op's shapes, strides and
//! gradient wiring against candle's conv2d. Inference and training on the CPU never use this op.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// Whether [`conv2d`] runs `x ⋆ w` on this build and device: cuDNN builds, CUDA, f32 (or f16
/// outside autograd: half-precision inference, tensor cores with f32 accumulation), and not
/// switched off by [`Tuning::cudnn`](crate::tuning::Tuning::cudnn) (for comparisons with candle's own conv).
pub fn available(x: &Tensor, w: &Tensor) -> bool {
    let dtypes_ok = match (x.dtype(), w.dtype()) {
        (DType::F32, DType::F32) => true,
        (DType::F16, DType::F16) => !x.track_op() && !w.track_op(),
        _ => false,
    };
    cfg!(feature = "cudnn") && x.device().is_cuda() && dtypes_ok && enabled()
}

fn enabled() -> bool {
    crate::tuning::current().cudnn
}

/// Convolution of `x` `(N, C, H, W)` with `w` `(O, C, K, K)`, zero padding `pad` on each
/// side, dilation 1.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    checked_conv(x, w, Geom { stride, pad }, None)
}

/// Applies [`Conv`] after checking that `w` fits `x`.
fn checked_conv(x: &Tensor, w: &Tensor, p: Geom, band_rows: Option<usize>) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (_, cw, kh, kw) = w.dims4()?;
    let Geom { stride, pad } = p;
    if c != cw || kh > h + 2 * pad || kw > wd + 2 * pad || stride == 0 {
        candle_core::bail!(
            "conv2d: input {:?} does not fit kernel {:?} at stride {stride}, padding {pad}",
            x.dims(),
            w.dims()
        );
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Conv { p, band_rows })
}

/// The gradient of [`conv2d`] with respect to its input: `∂L/∂x` of shape `x_dims` from
/// `∂L/∂y` (`grad`) and `w`, outside autograd (the loss network's hand-written backward pass).
pub fn conv2d_input_grad(
    grad: &Tensor,
    w: &Tensor,
    x_dims: [usize; 4],
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(
        &w.contiguous()?,
        &ConvBwdData {
            p: Geom { stride, pad },
            x: x_dims,
        },
    )
}

/// The unpadded conv `x ⋆ w` for inference, run as one cuDNN call per band of at most `rows`
/// output rows. Each band writes its rows of the one output tensor in place through a strided
/// descriptor, and reads a copy of its input rows made by a row kernel (see
/// `ffi::forward_in_bands` for why): cutting bands out with candle's `narrow` + `contiguous`
/// (a generic strided copy) and joining the results with `cat` was a third of a 4K pass's
/// kernel time (`docs/benchmarks.md`, stop 11).
pub fn conv2d_in_bands(x: &Tensor, w: &Tensor, stride: usize, rows: usize) -> Result<Tensor> {
    if x.track_op() || w.track_op() {
        candle_core::bail!("conv2d_in_bands is for inference only");
    }
    checked_conv(x, w, Geom { stride, pad: 0 }, Some(rows.max(1)))
}

/// Stride and zero padding of a conv.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Geom {
    stride: usize,
    pad: usize,
}

impl Geom {
    /// Output size along one spatial dimension.
    fn out(&self, input: usize, k: usize) -> usize {
        (input + 2 * self.pad - k) / self.stride + 1
    }

    /// Input index read by output `o` at kernel tap `k`, if inside the unpadded input.
    fn src(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.pad)
            .filter(|&i| i < len)
    }
}

fn dims4(l: &Layout) -> Result<[usize; 4]> {
    let (a, b, c, d) = l.shape().dims4()?;
    Ok([a, b, c, d])
}

/// `x ⋆ w` (forward); on CUDA in bands of `band_rows` output rows when set (inference).
struct Conv {
    p: Geom,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    band_rows: Option<usize>,
}

/// `∂L/∂x` from `∂L/∂y` and `w`; carries the input's shape, which `y` alone does not fix.
struct ConvBwdData {
    p: Geom,
    x: [usize; 4],
}

/// `∂L/∂w` from `x` and `∂L/∂y`.
struct ConvBwdFilter {
    p: Geom,
    k: (usize, usize),
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "atelier-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ([n, c, h, wd], [o, _, kh, kw]) = (dims4(l1)?, dims4(l2)?);
        let (x, w) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let p = self.p;
        let (oh, ow) = (p.out(h, kh), p.out(wd, kw));
        let mut y = vec![0f32; n * o * oh * ow];
        for (i, v) in y.iter_mut().enumerate() {
            let (ox, oy, co, b) = (i % ow, i / ow % oh, i / (ow * oh) % o, i / (ow * oh * o));
            let mut acc = 0f64;
            for ci in 0..c {
                for ky in 0..kh {
                    let Some(iy) = p.src(oy, ky, h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = p.src(ox, kx, wd) else {
                            continue;
                        };
                        let xv = x[((b * c + ci) * h + iy) * wd + ix];
                        acc += xv as f64 * w[((co * c + ci) * kh + ky) * kw + kx] as f64;
                    }
                }
            }
            *v = acc as f32;
        }
        Ok((CpuStorage::F32(y), Shape::from((n, o, oh, ow))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let ([n, _, h, wd], wdims) = (dims4(l1)?, dims4(l2)?);
        let y = [
            n,
            wdims[0],
            self.p.out(h, wdims[2]),
            self.p.out(wd, wdims[3]),
        ];
        let out = match self.band_rows {
            Some(rows) if rows < y[2] => {
                ffi::forward_in_bands(dims4(l1)?, wdims, self.p, rows, (s1, l1), (s2, l2))?
            }
            _ => ffi::run(
                ffi::Pass::Forward,
                dims4(l1)?,
                wdims,
                self.p,
                (s1, l1),
                (s2, l2),
            )?,
        };
        Ok((out, Shape::from(y.to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gx = if x.track_op() {
            let (n, c, h, wd) = x.dims4()?;
            Some(grad.apply_op2(
                w,
                ConvBwdData {
                    p: self.p,
                    x: [n, c, h, wd],
                },
            )?)
        } else {
            None
        };
        let gw = if w.track_op() {
            let (_, _, kh, kw) = w.dims4()?;
            Some(x.apply_op2(
                &grad,
                ConvBwdFilter {
                    p: self.p,
                    k: (kh, kw),
                },
            )?)
        } else {
            None
        };
        Ok((gx, gw))
    }
}

impl CustomOp2 for ConvBwdData {
    fn name(&self) -> &'static str {
        "atelier-conv2d-bwd-data"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ([n, o, oh, ow], [_, c, kh, kw]) = (dims4(l1)?, dims4(l2)?);
        let (g, w) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let [_, _, h, wd] = self.x;
        let p = self.p;
        let mut gx = vec![0f32; n * c * h * wd];
        for b in 0..n {
            for co in 0..o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let gv = g[((b * o + co) * oh + oy) * ow + ox];
                        for ci in 0..c {
                            for ky in 0..kh {
                                let Some(iy) = p.src(oy, ky, h) else { continue };
                                for kx in 0..kw {
                                    let Some(ix) = p.src(ox, kx, wd) else {
                                        continue;
                                    };
                                    gx[((b * c + ci) * h + iy) * wd + ix] +=
                                        gv * w[((co * c + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(gx), Shape::from(self.x.to_vec())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = ffi::run(
            ffi::Pass::BackwardData,
            self.x,
            dims4(l2)?,
            self.p,
            (s1, l1),
            (s2, l2),
        )?;
        Ok((out, Shape::from(self.x.to_vec())))
    }
}

impl CustomOp2 for ConvBwdFilter {
    fn name(&self) -> &'static str {
        "atelier-conv2d-bwd-filter"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ([n, c, h, wd], [_, o, oh, ow]) = (dims4(l1)?, dims4(l2)?);
        let (x, g) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let (kh, kw) = self.k;
        let p = self.p;
        let mut gw = vec![0f32; o * c * kh * kw];
        for (i, v) in gw.iter_mut().enumerate() {
            let (kx, ky, ci, co) = (i % kw, i / kw % kh, i / (kw * kh) % c, i / (kw * kh * c));
            let mut acc = 0f64;
            for b in 0..n {
                for oy in 0..oh {
                    let Some(iy) = p.src(oy, ky, h) else { continue };
                    for ox in 0..ow {
                        let Some(ix) = p.src(ox, kx, wd) else {
                            continue;
                        };
                        let xv = x[((b * c + ci) * h + iy) * wd + ix];
                        acc += xv as f64 * g[((b * o + co) * oh + oy) * ow + ox] as f64;
                    }
                }
            }
            *v = acc as f32;
        }
        Ok((CpuStorage::F32(gw), Shape::from((o, c, kh, kw))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let [_, c, _, _] = dims4(l1)?;
        let [_, o, _, _] = dims4(l2)?;
        let w = [o, c, self.k.0, self.k.1];
        let out = ffi::run(
            ffi::Pass::BackwardFilter,
            dims4(l1)?,
            w,
            self.p,
            (s1, l1),
            (s2, l2),
        )?;
        Ok((out, Shape::from(w.to_vec())))
    }
}

/// The contiguous f32 values of a CPU operand.
fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("atelier-conv2d: operand not contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => candle_core::bail!("atelier-conv2d: only f32 on the CPU"),
    }
}

#[cfg(all(feature = "cuda", not(feature = "cudnn")))]
mod ffi {
    //! Without cuDNN the op is never chosen ([`super::available`] is false).
    use candle_core::{CudaStorage, Layout, Result};

    pub enum Pass {
        Forward,
        BackwardData,
        BackwardFilter,
    }

    pub fn run(
        _: Pass,
        _: [usize; 4],
        _: [usize; 4],
        _: super::Geom,
        _: (&CudaStorage, &Layout),
        _: (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        candle_core::bail!("atelier-conv2d needs a build with --features cudnn")
    }

    pub fn forward_in_bands(
        _: [usize; 4],
        _: [usize; 4],
        _: super::Geom,
        _: usize,
        _: (&CudaStorage, &Layout),
        _: (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        candle_core::bail!("atelier-conv2d needs a build with --features cudnn")
    }
}

#[cfg(feature = "cudnn")]
mod ffi {
    //! Plans (descriptors + the algorithm cuDNN measured fastest) cached per thread and shape.
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::cudnn::sys;
    use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr};
    use candle_core::cuda_backend::{CudaDType, CudaDevice, DeviceId};
    use candle_core::{CudaStorage, DType, Layout, Result};
    use half::f16;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::ffi::c_void;

    /// Largest workspace an algorithm may ask for; slower algorithms that fit are used instead.
    const WORKSPACE_LIMIT: usize = 1 << 30;
    /// The same for half-precision inference, which is meant to stay within about 2 GB at 4K.
    const WORKSPACE_LIMIT_HALF: usize = 256 << 20;

    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    pub enum Pass {
        Forward,
        BackwardData,
        BackwardFilter,
    }

    #[derive(Clone, Copy, Debug)]
    enum Algo {
        Fwd(sys::cudnnConvolutionFwdAlgo_t),
        Data(sys::cudnnConvolutionBwdDataAlgo_t),
        Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
    }

    /// The element type of a conv's tensors (arithmetic is f32 for all three).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    enum Io {
        F32,
        /// Half-precision inference.
        F16,
    }

    impl Io {
        fn of(a: DType, b: DType) -> Result<Self> {
            match (a, b) {
                (DType::F32, DType::F32) => Ok(Self::F32),
                (DType::F16, DType::F16) => Ok(Self::F16),
                (a, b) => {
                    candle_core::bail!("atelier-conv2d: no cuDNN conv for {a:?} with {b:?}")
                }
            }
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    struct Key {
        device: DeviceId,
        io: Io,
        pass: Pass,
        x: [usize; 4],
        w: [usize; 4],
        p: super::Geom,
        /// For a band of a larger tensor: the full heights of the input and of the output, whose
        /// strides the band's descriptors take (`None`: packed).
        parent: (Option<usize>, Option<usize>),
    }

    /// Descriptors of one conv shape and the algorithm chosen for one pass over it.
    struct Plan {
        x: sys::cudnnTensorDescriptor_t,
        y: sys::cudnnTensorDescriptor_t,
        w: sys::cudnnFilterDescriptor_t,
        conv: sys::cudnnConvolutionDescriptor_t,
        algo: Algo,
        workspace: usize,
    }

    impl Drop for Plan {
        fn drop(&mut self) {
            // SAFETY: the descriptors were created in `make_plan` and are destroyed once, here.
            unsafe {
                sys::cudnnDestroyTensorDescriptor(self.x);
                sys::cudnnDestroyTensorDescriptor(self.y);
                sys::cudnnDestroyFilterDescriptor(self.w);
                sys::cudnnDestroyConvolutionDescriptor(self.conv);
            }
        }
    }

    struct Handle(sys::cudnnHandle_t);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle was created by `cudnnCreate` in `handle` and is destroyed once,
            // here.
            unsafe {
                sys::cudnnDestroy(self.0);
            }
        }
    }

    thread_local! {
        // cuDNN handles are not thread-safe: one per thread and device, as candle does.
        static HANDLES: RefCell<HashMap<DeviceId, Handle>> = RefCell::new(HashMap::new());
        static PLANS: RefCell<HashMap<Key, Plan>> = RefCell::new(HashMap::new());
    }

    fn check(status: sys::cudnnStatus_t, what: &str) -> Result<()> {
        if status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            Ok(())
        } else {
            candle_core::bail!("cuDNN {what} failed: {status:?}")
        }
    }

    fn handle(dev: &CudaDevice) -> Result<sys::cudnnHandle_t> {
        HANDLES.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(handle) = h.get(&dev.id()) {
                return Ok(handle.0);
            }
            let stream = dev.cuda_stream();
            stream
                .context()
                .bind_to_thread()
                .map_err(candle_core::Error::wrap)?;
            let mut raw = std::ptr::null_mut();
            // SAFETY: `raw` is a valid out-pointer; the stream belongs to the context just bound to
            // this thread and outlives the handle (candle keeps its device alive).
            unsafe {
                check(sys::cudnnCreate(&mut raw), "create")?;
                check(
                    sys::cudnnSetStream(raw, stream.cu_stream() as sys::cudaStream_t),
                    "set stream",
                )?;
            }
            h.insert(dev.id(), Handle(raw));
            Ok(raw)
        })
    }

    /// TF32 tensor cores for f32 convs, as PyTorch allows by default; [`Tuning::tf32`] off
    /// turns them off (full f32 FMA math, for exact comparisons).
    ///
    /// [`Tuning::tf32`]: crate::tuning::Tuning::tf32
    fn math_type() -> sys::cudnnMathType_t {
        if crate::device::tf32_enabled() {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        }
    }

    fn i32s(d: [usize; 4]) -> [i32; 4] {
        d.map(|v| v as i32)
    }

    impl Key {
        fn workspace_limit(&self) -> usize {
            if self.io == Io::F16 {
                WORKSPACE_LIMIT_HALF
            } else {
                WORKSPACE_LIMIT
            }
        }
    }

    /// Device pointers of one call: the two operands and the output.
    #[derive(Clone, Copy)]
    struct Ptrs {
        a: *const c_void,
        b: *const c_void,
        out: *mut c_void,
    }

    fn make_plan(dev: &CudaDevice, h: sys::cudnnHandle_t, key: &Key, ptrs: Ptrs) -> Result<Plan> {
        use sys::cudnnDataType_t::CUDNN_DATA_FLOAT as F32;
        use sys::cudnnDataType_t::CUDNN_DATA_HALF as F16;
        use sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW as NCHW;
        // Half-precision tensors with f32 arithmetic ("pseudo-half"), which the tensor cores run.
        let io = match key.io {
            Io::F32 => F32,
            Io::F16 => F16,
        };
        let [n, c, hh, ww] = i32s(key.x);
        let [o, _, kh, kw] = i32s(key.w);
        let (s, pad) = (key.p.stride as i32, key.p.pad as i32);
        let (oh, ow) = (
            key.p.out(key.x[2], key.w[2]) as i32,
            key.p.out(key.x[3], key.w[3]) as i32,
        );
        let mut plan = Plan {
            x: std::ptr::null_mut(),
            y: std::ptr::null_mut(),
            w: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
            algo: Algo::Fwd(
                sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            ),
            workspace: 0,
        };
        // SAFETY: each create call gets a valid out-pointer into `plan`, and each set call a
        // descriptor just created, with dimensions and strides that describe the operands.
        unsafe {
            check(sys::cudnnCreateTensorDescriptor(&mut plan.x), "descriptor")?;
            check(sys::cudnnCreateTensorDescriptor(&mut plan.y), "descriptor")?;
            check(sys::cudnnCreateFilterDescriptor(&mut plan.w), "descriptor")?;
            check(
                sys::cudnnCreateConvolutionDescriptor(&mut plan.conv),
                "descriptor",
            )?;
            // A band's rows lie in a taller tensor: the same strides as that tensor.
            let (xh, yh) = (
                key.parent.0.map_or(hh, |v| v as i32),
                key.parent.1.map_or(oh, |v| v as i32),
            );
            check(
                sys::cudnnSetTensor4dDescriptorEx(
                    plan.x,
                    io,
                    n,
                    c,
                    hh,
                    ww,
                    c * xh * ww,
                    xh * ww,
                    ww,
                    1,
                ),
                "x descriptor",
            )?;
            check(
                sys::cudnnSetTensor4dDescriptorEx(
                    plan.y,
                    io,
                    n,
                    o,
                    oh,
                    ow,
                    o * yh * ow,
                    yh * ow,
                    ow,
                    1,
                ),
                "y descriptor",
            )?;
            check(
                sys::cudnnSetFilter4dDescriptor(plan.w, io, NCHW, o, c, kh, kw),
                "w descriptor",
            )?;
            check(
                sys::cudnnSetConvolution2dDescriptor(
                    plan.conv,
                    pad,
                    pad,
                    s,
                    s,
                    1,
                    1,
                    sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                    F32,
                ),
                "conv descriptor",
            )?;
            let math = if key.io != Io::F32 {
                sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
            } else {
                math_type()
            };
            check(
                sys::cudnnSetConvolutionMathType(plan.conv, math),
                "math type",
            )?;
        }
        let limit = key.workspace_limit();
        // Benchmark every algorithm; keep the fastest whose workspace fits. Twice: CUDA loads
        // kernels lazily, so in the first search each candidate's first launch pays for loading
        // its module, which made the search pick cuDNN's generic kernels over far faster
        // tensor-core ones, differently from one process to the next.
        const SEARCHES: usize = 2;
        let mut count = 0;
        // SAFETY: the perf arrays are plain C structs for which all-zero bytes are valid; the
        // search gets descriptors of `plan`, operand pointers that the caller keeps valid
        // (`with_operands` holds their guards) and a workspace of `limit` bytes whose guard `_gw`
        // lives to the end of the forward arm.
        let (algo, workspace, math) = unsafe {
            match key.pass {
                Pass::Forward => {
                    // The Ex search runs in a workspace we give it, so trying the algorithms
                    // never needs more memory than running the chosen one may use (the plain
                    // search allocates whatever each candidate asks for).
                    let mut ws = dev.alloc::<u8>(limit)?;
                    let stream = dev.cuda_stream();
                    let (pw, _gw) = ws.device_ptr_mut(&stream);
                    let mut perf = [std::mem::zeroed::<sys::cudnnConvolutionFwdAlgoPerf_t>(); 16];
                    for _ in 0..SEARCHES {
                        check(
                            sys::cudnnFindConvolutionForwardAlgorithmEx(
                                h,
                                plan.x,
                                ptrs.a,
                                plan.w,
                                ptrs.b,
                                plan.conv,
                                plan.y,
                                ptrs.out,
                                perf.len() as i32,
                                &mut count,
                                perf.as_mut_ptr(),
                                pw as *mut c_void,
                                limit,
                            ),
                            "find forward algorithm",
                        )?;
                    }
                    let p = perf[..count as usize]
                        .iter()
                        .find(|p| ok(p.status) && p.memory <= limit)
                        .ok_or_else(|| no_algo(key))?;
                    (Algo::Fwd(p.algo), p.memory, p.mathType)
                }
                Pass::BackwardData => {
                    let mut perf =
                        [std::mem::zeroed::<sys::cudnnConvolutionBwdDataAlgoPerf_t>(); 16];
                    for _ in 0..SEARCHES {
                        check(
                            sys::cudnnFindConvolutionBackwardDataAlgorithm(
                                h,
                                plan.w,
                                plan.y,
                                plan.conv,
                                plan.x,
                                perf.len() as i32,
                                &mut count,
                                perf.as_mut_ptr(),
                            ),
                            "find backward-data algorithm",
                        )?;
                    }
                    let p = perf[..count as usize]
                        .iter()
                        .find(|p| ok(p.status) && p.memory <= limit)
                        .ok_or_else(|| no_algo(key))?;
                    (Algo::Data(p.algo), p.memory, p.mathType)
                }
                Pass::BackwardFilter => {
                    let mut perf =
                        [std::mem::zeroed::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>(); 16];
                    for _ in 0..SEARCHES {
                        check(
                            sys::cudnnFindConvolutionBackwardFilterAlgorithm(
                                h,
                                plan.x,
                                plan.y,
                                plan.conv,
                                plan.w,
                                perf.len() as i32,
                                &mut count,
                                perf.as_mut_ptr(),
                            ),
                            "find backward-filter algorithm",
                        )?;
                    }
                    let p = perf[..count as usize]
                        .iter()
                        .find(|p| ok(p.status) && p.memory <= limit)
                        .ok_or_else(|| no_algo(key))?;
                    (Algo::Filter(p.algo), p.memory, p.mathType)
                }
            }
        };
        // SAFETY: `plan.conv` is a live descriptor created above.
        unsafe {
            // The measured algorithm may need the math type it was measured with.
            check(
                sys::cudnnSetConvolutionMathType(plan.conv, math),
                "math type",
            )?;
        }
        if crate::tuning::current().cudnn_log {
            eprintln!(
                "cudnn {:?} x{:?} w{:?} {:?}: {algo:?} {math:?}, workspace {workspace} B",
                key.pass, key.x, key.w, key.p
            );
        }
        plan.algo = algo;
        plan.workspace = workspace;
        Ok(plan)
    }

    fn ok(s: sys::cudnnStatus_t) -> bool {
        s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
    }

    fn no_algo(key: &Key) -> candle_core::Error {
        candle_core::Error::Msg(format!(
            "cuDNN has no {:?} algorithm for x{:?} w{:?} {:?} within {} MiB of workspace",
            key.pass,
            key.x,
            key.w,
            key.p,
            key.workspace_limit() >> 20
        ))
    }

    /// Runs one pass. Operands: forward (x, w) → y; backward-data (dy, w) → dx;
    /// backward-filter (x, dy) → dw. `x` and `w` are the forward shapes.
    pub fn run(
        pass: Pass,
        x: [usize; 4],
        w: [usize; 4],
        p: super::Geom,
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let dev = s1.device.clone();
        let h = handle(&dev)?;
        let io = Io::of(s1.dtype(), s2.dtype())?;
        let key = Key {
            device: dev.id(),
            io,
            pass,
            x,
            w,
            p,
            parent: (None, None),
        };
        let out_len = match pass {
            Pass::Forward => x[0] * w[0] * p.out(x[2], w[2]) * p.out(x[3], w[3]),
            Pass::BackwardData => x.iter().product(),
            Pass::BackwardFilter => w.iter().product(),
        };
        match io {
            Io::F32 => run_typed::<f32>(&dev, h, &key, (s1, l1), (s2, l2), out_len),
            Io::F16 => run_typed::<f16>(&dev, h, &key, (s1, l1), (s2, l2), out_len),
        }
    }

    fn run_typed<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        h: sys::cudnnHandle_t,
        key: &Key,
        a: (&CudaStorage, &Layout),
        b: (&CudaStorage, &Layout),
        out_len: usize,
    ) -> Result<CudaStorage> {
        with_operands::<T>(dev, a, b, out_len, |pa, pb, po| {
            let ptrs = Ptrs {
                a: pa as *const c_void,
                b: pb as *const c_void,
                out: po as *mut c_void,
            };
            execute(dev, h, key, ptrs)
        })
    }

    /// Allocates an output of `out_len` elements and runs `f` on the device addresses of the
    /// two operands and the output, which stay valid until it returns.
    fn with_operands<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
        out_len: usize,
        f: impl FnOnce(u64, u64, u64) -> Result<()>,
    ) -> Result<CudaStorage> {
        let a = s1.as_cuda_slice::<T>()?.slice(l1.start_offset()..);
        let b = s2.as_cuda_slice::<T>()?.slice(l2.start_offset()..);
        // SAFETY: uninitialised device memory that cuDNN writes in full (beta = 0) before it is
        // read.
        let mut out = unsafe { dev.alloc::<T>(out_len)? };
        let stream = dev.cuda_stream();
        let (pa, _ga) = a.device_ptr(&stream);
        let (pb, _gb) = b.device_ptr(&stream);
        let (po, _go) = out.device_ptr_mut(&stream);
        f(pa, pb, po)?;
        drop((_ga, _gb, _go));
        Ok(T::wrap_cuda_slice(out, dev.clone()))
    }

    /// Forward conv of `x` (no padding) in bands of at most `rows` output rows, each band
    /// written in place to its rows of the one output tensor, its input rows copied out first
    /// (reading them in place made cuDNN's own layout transposes slow: `docs/benchmarks.md`).
    pub fn forward_in_bands(
        x: [usize; 4],
        w: [usize; 4],
        p: super::Geom,
        rows: usize,
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        if p.pad != 0 {
            candle_core::bail!("atelier-conv2d: bands need an unpadded conv");
        }
        let dev = s1.device.clone();
        let h = handle(&dev)?;
        let (a, b) = ((s1, l1), (s2, l2));
        match Io::of(s1.dtype(), s2.dtype())? {
            Io::F32 => bands_typed::<f32>(&dev, h, Io::F32, x, w, p, rows, a, b),
            Io::F16 => bands_typed::<f16>(&dev, h, Io::F16, x, w, p, rows, a, b),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bands_typed<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        h: sys::cudnnHandle_t,
        io: Io,
        x: [usize; 4],
        w: [usize; 4],
        p: super::Geom,
        rows: usize,
        a: (&CudaStorage, &Layout),
        b: (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let [n, c, xh, xw] = x;
        let (k, stride) = (w[2], p.stride);
        let (oh, ow) = (p.out(xh, w[2]), p.out(xw, w[3]));
        let size = std::mem::size_of::<T>() as u64;
        let stream = dev.cuda_stream();
        with_operands::<T>(dev, a, b, n * w[0] * oh * ow, |pa, pb, po| {
            let mut y0 = 0;
            while y0 < oh {
                let y1 = (y0 + rows.max(1)).min(oh);
                let in0 = y0 * stride;
                let in_rows = (y1 - 1) * stride + k - in0;
                // The input band is copied into a packed buffer; the output band is written in
                // place, through a descriptor with the whole output's strides (`parent`).
                let key = Key {
                    device: dev.id(),
                    io,
                    pass: Pass::Forward,
                    x: [n, c, in_rows, xw],
                    w,
                    p,
                    parent: (None, Some(oh)),
                };
                // SAFETY: every element is written by the row copy below before cuDNN reads it.
                let mut x_buf = unsafe { dev.alloc::<T>(n * c * in_rows * xw)? };
                // The guard keeps the buffer's address valid (and its stream use recorded) until
                // cuDNN has been queued on it.
                let (pa_band, x_guard) = x_buf.device_ptr_mut(&stream);
                // SAFETY: `pa` holds the whole input (`n·c` planes of `xh` rows of `xw`) and
                // `pa_band` `n·c` planes of `in_rows` rows, both of `T` (f16 when `io` is not
                // F32), live until the queued copy has run: `pa` for the whole closure, the band
                // until `x_buf` is freed, stream-ordered, after the conv.
                unsafe {
                    crate::ops::cuda::pad::gpu::copy_rows_raw(
                        dev,
                        io != Io::F32,
                        (pa, pa_band),
                        n * c,
                        xw,
                        in_rows,
                        (xh, in0),
                        (in_rows, 0),
                    )?;
                }
                let ptrs = Ptrs {
                    a: pa_band as *const c_void,
                    b: pb as *const c_void,
                    out: (po + (y0 * ow) as u64 * size) as *mut c_void,
                };
                execute(dev, h, &key, ptrs)?;
                // Stream-ordered: the buffer is freed after the work queued on it.
                drop(x_guard);
                drop(x_buf);
                y0 = y1;
            }
            Ok(())
        })
    }

    /// Runs `key`'s pass on `ptrs`, finding its plan first if this thread has none yet.
    fn execute(dev: &CudaDevice, h: sys::cudnnHandle_t, key: &Key, ptrs: Ptrs) -> Result<()> {
        let stream = dev.cuda_stream();
        PLANS.with(|plans| -> Result<()> {
            let mut plans = plans.borrow_mut();
            let plan = match plans.entry(*key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(make_plan(dev, h, key, ptrs)?)
                }
            };
            // SAFETY: scratch memory that cuDNN only uses during the call.
            let mut ws = unsafe { dev.alloc::<u8>(plan.workspace.max(1))? };
            let (pw, _gw) = ws.device_ptr_mut(&stream);
            // Scaling factors are f32 for f32 and for f16 data alike (cuDNN's rule).
            let (alpha, beta) = (1f32, 0f32);
            let alpha = &alpha as *const f32 as *const c_void;
            let beta = &beta as *const f32 as *const c_void;
            let Ptrs {
                a: pa,
                b: pb,
                out: po,
            } = ptrs;
            let pw = pw as *mut c_void;
            // SAFETY: `plan`'s descriptors describe the operands; `ptrs` are device addresses the
            // caller keeps valid for the call (their guards are held by `with_operands` or the band
            // loop) and `pw` is the workspace of `plan.workspace` bytes, whose guard `_gw` is alive.
            let status = unsafe {
                match plan.algo {
                    Algo::Fwd(algo) => sys::cudnnConvolutionForward(
                        h,
                        alpha,
                        plan.x,
                        pa,
                        plan.w,
                        pb,
                        plan.conv,
                        algo,
                        pw,
                        plan.workspace,
                        beta,
                        plan.y,
                        po,
                    ),
                    Algo::Data(algo) => sys::cudnnConvolutionBackwardData(
                        h,
                        alpha,
                        plan.w,
                        pb,
                        plan.y,
                        pa,
                        plan.conv,
                        algo,
                        pw,
                        plan.workspace,
                        beta,
                        plan.x,
                        po,
                    ),
                    Algo::Filter(algo) => sys::cudnnConvolutionBackwardFilter(
                        h,
                        alpha,
                        plan.x,
                        pa,
                        plan.y,
                        pb,
                        plan.conv,
                        algo,
                        pw,
                        plan.workspace,
                        beta,
                        plan.w,
                        po,
                    ),
                }
            };
            check(status, "convolution")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::max_abs_diff;
    use candle_core::{Device, Var};

    /// The op's forward pass and both gradients equal candle's conv2d on the CPU.
    #[test]
    fn matches_candle_conv2d_and_its_gradients() {
        let d = Device::Cpu;
        for (x_dims, w_dims, stride, pad) in [
            ((2, 3, 13, 11), (4, 3, 3, 3), 1, 0),
            ((2, 3, 13, 11), (4, 3, 3, 3), 2, 0),
            ((2, 3, 8, 7), (4, 3, 3, 3), 1, 1),
            ((1, 2, 10, 12), (3, 2, 5, 5), 2, 2),
            ((2, 4, 9, 9), (2, 4, 1, 1), 1, 0),
        ] {
            let x = Var::randn(0f32, 1., x_dims, &d).unwrap();
            let w = Var::randn(0f32, 1., w_dims, &d).unwrap();
            let (n, o, oh, ow) = {
                let y = x
                    .as_tensor()
                    .conv2d(w.as_tensor(), pad, stride, 1, 1)
                    .unwrap();
                y.dims4().unwrap()
            };
            // A fixed random weighting of the outputs, so each output gets its own gradient.
            let r = Tensor::randn(0f32, 1., (n, o, oh, ow), &d).unwrap();
            let run = |ours: bool| {
                let y = if ours {
                    conv2d(x.as_tensor(), w.as_tensor(), stride, pad).unwrap()
                } else {
                    x.as_tensor()
                        .conv2d(w.as_tensor(), pad, stride, 1, 1)
                        .unwrap()
                };
                let g = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                (
                    y,
                    g.get(x.as_tensor()).unwrap().clone(),
                    g.get(w.as_tensor()).unwrap().clone(),
                )
            };
            let (y1, gx1, gw1) = run(false);
            let (y2, gx2, gw2) = run(true);
            assert_eq!(y1.dims(), y2.dims());
            assert_eq!(gx1.dims(), gx2.dims());
            assert_eq!(gw1.dims(), gw2.dims());
            for (a, b, what) in [(&y1, &y2, "y"), (&gx1, &gx2, "dx"), (&gw1, &gw2, "dw")] {
                let scale = a
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let diff = max_abs_diff(a, b);
                assert!(
                    diff <= 1e-5 * scale.max(1.0),
                    "{what} differs by {diff} at x{x_dims:?} w{w_dims:?} stride {stride} pad {pad}"
                );
            }
        }
    }

    /// Gradients are computed only for operands that need them.
    #[test]
    fn skips_gradients_nobody_needs() {
        let d = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, 2, 6, 6), &d).unwrap();
        let w = Var::randn(0f32, 1., (3, 2, 3, 3), &d).unwrap();
        let g = conv2d(&x, w.as_tensor(), 1, 0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&x).is_none());
        assert!(g.get(w.as_tensor()).is_some());
    }
}
