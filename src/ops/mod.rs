//! Tensor operations below the layers: the CPU convolution, cuDNN convolutions, fused CUDA
//! kernels and the padding ops built on them. Each op picks its path (CPU, CUDA kernel,
//! cuDNN, candle's composition) itself, so layers call one function per op.

pub mod adam;
pub mod conv;
pub mod conv_rewrite;
pub mod cpu_conv;
pub mod cuda;
pub mod cudnn;
pub mod norm;
pub mod pad;
pub mod pool;

/// `∂L/∂v` for `y` computed from `v`, given `∂L/∂y = g`: one operation's gradient through
/// autograd, for the devices without the hand-written kernels.
pub(crate) fn grad_through(
    v: &candle_core::Var,
    y: &candle_core::Tensor,
    g: &candle_core::Tensor,
) -> candle_core::Result<candle_core::Tensor> {
    let grads = y.mul(&g.detach())?.sum_all()?.backward()?;
    grads
        .get(v.as_tensor())
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg("the operation has no input gradient".into()))
}

/// Largest absolute element-wise difference (for tests comparing two computations).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
