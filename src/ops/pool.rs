//! The loss network's ops outside the convs — bias + ReLU, 2×2 max pooling and the gradients
//! its hand-written backward pass needs — each on the fused CUDA kernel where it runs
//! ([`super::cuda::pool`]) and candle's composition elsewhere, so the network calls one
//! function per op.

use super::cuda;
use candle_core::{Result, Tensor};

/// `relu(x + b)`, `b` a `(1, C, 1, 1)` f32 bias of `x` `(N, C, H, W)`.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cuda::available_half_too(x) {
        return cuda::bias_relu(x, b);
    }
    x.broadcast_add(b)?.relu()
}

/// 2×2 max pooling, stride 2 (odd trailing rows and columns dropped, as in VGG); gradients go
/// to each window's maximum.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    if cuda::available_half_too(x) {
        return cuda::max_pool2(x);
    }
    max_pool_2x2(x)
}

/// Gradient through a ReLU, from its output `a` and the output gradient `g`.
pub fn relu_grad(a: &Tensor, g: &Tensor) -> Result<Tensor> {
    if cuda::available_half_too(a) {
        return cuda::relu_grad(a, g);
    }
    g.mul(&a.gt(0.0)?.to_dtype(g.dtype())?)
}

/// Gradient through the 2×2 max pool of `a`, from the output gradient `g`.
pub fn max_pool2_grad(a: &Tensor, g: &Tensor) -> Result<Tensor> {
    if cuda::available_half_too(a) {
        return cuda::max_pool2_grad(a, g);
    }
    // Elsewhere (tests, CPU training) through autograd on this one operation.
    let v = candle_core::Var::from_tensor(&a.detach())?;
    super::grad_through(&v, &max_pool_2x2(v.as_tensor())?, g)
}

/// 2×2 max pooling, stride 2 (odd trailing rows/columns dropped, as in VGG), composed.
///
/// Written as a reshape and two max reductions because candle 0.11's `max_pool2d`
/// backward multiplies the gradient by the fraction of maxima in each window (¼ for a
/// unique maximum) instead of dividing by their count: every pool would shrink the
/// gradient 4×, starving the content loss and the deeper style layers.
pub fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (h2, w2) = (h / 2, w / 2);
    x.narrow(2, 0, 2 * h2)?
        .narrow(3, 0, 2 * w2)?
        .reshape((n, c, h2, 2, w2, 2))?
        .max(5)?
        .max(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn max_pool_matches_candle_forward_and_routes_the_whole_gradient() {
        let x = candle_core::Var::randn(0f32, 1., (2, 3, 9, 8), &Device::Cpu).unwrap();
        let ours = max_pool_2x2(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().max_pool2d(2).unwrap();
        assert_eq!(crate::ops::max_abs_diff(&ours, &theirs), 0.0);
        let g = ours.sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap();
        // Random inputs have one maximum per window: each window passes a gradient of exactly 1.
        let total = gx.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(total, (2 * 3 * 4 * 4) as f32);
        let max = gx.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(max, 1.0);
    }
}
