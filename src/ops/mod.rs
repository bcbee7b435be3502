//! Tensor operations below the layers: the CPU convolution, cuDNN convolutions, fused CUDA
//! kernels and the padding ops built on them. Each op picks its path (CPU, CUDA kernel,
//! cuDNN, candle's composition) itself, so layers call one function per op.

pub mod conv;
pub mod conv_rewrite;
pub mod cpu_conv;
pub mod cuda;
pub mod cudnn;
pub mod pad;

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
