//! An exact rewrite of the style network's upsampling convs into a shape that cuDNN's
//! tensor-core kernels run well, for inference on CUDA.
//!
//! The upsampling layers (nearest ×2, reflection pad 1, 3×3 conv) become one 3×3 conv over
//! the low-resolution input, edge-padded by 1, with four output channels per channel (one
//! per output pixel parity), then a depth-to-space copy. Nearest upsampling makes each
//! parity see only two distinct rows and columns, so its kernel is the 3×3 kernel with taps
//! summed; and reflecting an upsampled image by one pixel repeats its border, which is edge
//! padding at low resolution. Same result, no 4×-sized upsampled buffer, and the conv runs at
//! a quarter of the pixels with 4× the channels, which tensor cores run far better.
//!
//! The stride-2 downsampling convs (reflection pad 1, 3×3 at stride 2) become a 2×2 conv at
//! stride 1 over the padded input rearranged space-to-depth (4× the channels, half the size):
//! cuDNN has no tensor-core kernel for the strided NCHW f16 form and ran it on its generic
//! path.
//!
//! The 9×9 convs at full resolution (3 → 32 channels in, 32 → 3 out) become 5×5 convs at half
//! resolution between space-to-depth and depth-to-space: 4× the channels on both sides (12 →
//! 128 and 128 → 12), which the tensor cores take, where cuDNN ran the 3-channel forms on its
//! generic path.
//!
//! The 3-channel 9×9 input conv is blocked twice: space to depth two times (48 channels at a
//! quarter of the size), a 3×3 conv to 512 channels, depth to space two times. Blocked once it
//! still had too few channels for the tensor cores; twice it does.
//!
//! What each rewrite gained, and the forms tried and dropped (zero-padding the 3-channel ends,
//! the once-blocked input conv, the stride-2 form for the 64-channel conv), are measured in
//! `docs/benchmarks.md` (stops 10 and 11).

use super::conv::conv2d_banded;
use super::pad::{depth_to_space2, edge_pad, reflect_pad_space_to_depth2};
use candle_core::{DType, Device, Result, Tensor};

/// A conv (with its padding) replaced by an equivalent that runs faster on CUDA.
#[derive(Debug, Clone)]
pub enum FastConv {
    /// Upsample ×2 + reflection pad 1 + 3×3 conv as edge pad 1 + 3×3 conv with these
    /// `(4·O, C, 3, 3)` weights + depth to space.
    Subpixel(Tensor),
    /// Reflection pad 1 + 3×3 conv at stride 2 as reflection pad 1 + space to depth + 2×2
    /// conv with these `(O, 4·C, 2, 2)` weights.
    Strided(Tensor),
    /// Reflection pad `k/2` + k×k conv (stride 1, odd k) as reflection pad + space to depth +
    /// `(k/2 + 1)`² conv with these `(4·O, 4·C, t, t)` weights + depth to space, cropped to
    /// the input's size.
    Blocked(Tensor, usize),
    /// The blocked form applied twice, for the 3-channel input conv: reflection pad `k/2` +
    /// space to depth twice (16·C channels at a quarter of the size) + 3×3 conv (for k = 9)
    /// with these `(16·O, 16·C, t, t)` weights + depth to space twice, cropped.
    Blocked4(Tensor, usize),
}

impl FastConv {
    /// Whether rewrites apply to a conv whose weights are `w`: CUDA builds with cuDNN, plain
    /// tensors (inference; training keeps the original graph), and
    /// [`Tuning::conv_rewrites`](crate::tuning::Tuning::conv_rewrites).
    pub fn applies(w: &Tensor) -> bool {
        cfg!(feature = "cudnn")
            && w.device().is_cuda()
            && !w.track_op()
            && crate::tuning::current().conv_rewrites
    }

    pub fn subpixel(w: &Tensor) -> Result<Self> {
        Ok(Self::Subpixel(on_like(&subpixel_weights(&host(w)?)?, w)?))
    }

    pub fn strided(w: &Tensor) -> Result<Self> {
        Ok(Self::Strided(on_like(&strided_weights(&host(w)?)?, w)?))
    }

    pub fn blocked4(w: &Tensor) -> Result<Self> {
        let k = w.dim(2)?;
        let once = blocked_weights(&host(w)?)?;
        Ok(Self::Blocked4(on_like(&blocked_weights(&once)?, w)?, k / 2))
    }

    pub fn blocked(w: &Tensor) -> Result<Self> {
        let k = w.dim(2)?;
        Ok(Self::Blocked(
            on_like(&blocked_weights(&host(w)?)?, w)?,
            k / 2,
        ))
    }

    /// The conv's output without bias (the caller adds it where it matters).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Subpixel(k) => depth_to_space2(&conv2d_banded(&edge_pad(x, 1)?, k, 1)?),
            Self::Strided(k) => conv2d_banded(&reflect_pad_space_to_depth2(x, 1)?, k, 1),
            Self::Blocked4(k, pad) => {
                let (_, _, h, w) = x.dims4()?;
                let s = reflect_pad_space_to_depth2(x, *pad)?;
                let (_, _, sh, sw) = s.dims4()?;
                let y =
                    depth_to_space2(&conv2d_banded(&reflect_pad_space_to_depth2(&s, 0)?, k, 1)?)?;
                // The once-blocked conv (pad + 1 taps, unpadded) gives sh − pad rows.
                let y = depth_to_space2(&crop(y, sh - pad, sw - pad)?)?;
                crop(y, h, w)
            }
            Self::Blocked(k, pad) => {
                let (_, _, h, w) = x.dims4()?;
                let y = depth_to_space2(&blocked_conv(x, k, *pad)?)?;
                // Odd sizes come out one row or column larger.
                if y.dim(2)? != h || y.dim(3)? != w {
                    y.narrow(2, 0, h)?.narrow(3, 0, w)?.contiguous()
                } else {
                    Ok(y)
                }
            }
        }
    }
}

impl FastConv {
    /// The blocked form as the network's last layer in half precision on CUDA: its final
    /// depth to space also crops, adds `bias` and converts to f32, in one pass over the image
    /// (a separate bias add was a generic broadcast kernel). `None` where that does not apply.
    pub fn forward_output(&self, x: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
        let Self::Blocked(k, pad) = self else {
            return Ok(None);
        };
        if x.dtype() != DType::F16 || !super::cuda::available_for_inference(x) {
            return Ok(None);
        }
        let (_, _, h, w) = x.dims4()?;
        let y = blocked_conv(x, k, *pad)?;
        super::cuda::depth_to_space2_out(&y, bias, h, w).map(Some)
    }
}

/// The top-left `h`×`w` of `y` (a copy only when that is smaller).
fn crop(y: Tensor, h: usize, w: usize) -> Result<Tensor> {
    if y.dim(2)? != h || y.dim(3)? != w {
        y.narrow(2, 0, h)?.narrow(3, 0, w)?.contiguous()
    } else {
        Ok(y)
    }
}

/// The blocked form up to its depth to space: space to depth, then the conv at half resolution.
fn blocked_conv(x: &Tensor, k: &Tensor, pad: usize) -> Result<Tensor> {
    let mut s2d = reflect_pad_space_to_depth2(x, pad)?;
    let (n, c4, sh, sw) = s2d.dims4()?;
    if k.dim(1)? > c4 {
        let zeros = Tensor::zeros((n, k.dim(1)? - c4, sh, sw), s2d.dtype(), s2d.device())?;
        s2d = Tensor::cat(&[&s2d, &zeros], 1)?;
    }
    conv2d_banded(&s2d, k, 1)
}

fn host(w: &Tensor) -> Result<Tensor> {
    w.to_dtype(DType::F32)?.to_device(&Device::Cpu)
}

fn on_like(t: &Tensor, like: &Tensor) -> Result<Tensor> {
    t.to_dtype(like.dtype())?.to_device(like.device())
}

/// For output parity `a` (0: even rows, 1: odd rows), which taps of the original 3×3 kernel
/// land on low-resolution tap `r` of the edge-padded input.
fn taps(a: usize, r: usize) -> &'static [usize] {
    const TAPS: [[&[usize]; 3]; 2] = [[&[0], &[1, 2], &[]], [&[], &[0, 1], &[2]]];
    TAPS[a][r]
}

/// `(O, C, 3, 3)` weights of "upsample ×2, reflection pad 1, conv" → `(4·O, C, 3, 3)` weights
/// of "edge pad 1, conv, depth to space" (output channel `4o + 2a + b` is parity `(a, b)` of
/// channel `o`).
pub fn subpixel_weights(w: &Tensor) -> Result<Tensor> {
    let (o, c, kh, kw) = w.dims4()?;
    if (kh, kw) != (3, 3) {
        candle_core::bail!("subpixel rewrite needs a 3×3 kernel, got {kh}×{kw}");
    }
    let src = w.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; 4 * o * c * 9];
    for oc in 0..o {
        for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            for ic in 0..c {
                let from = &src[(oc * c + ic) * 9..][..9];
                let to = &mut out[((oc * 4 + a * 2 + b) * c + ic) * 9..][..9];
                for r in 0..3 {
                    for s in 0..3 {
                        to[r * 3 + s] = taps(a, r)
                            .iter()
                            .flat_map(|&ky| taps(b, s).iter().map(move |&kx| from[ky * 3 + kx]))
                            .sum();
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, (4 * o, c, 3, 3), &Device::Cpu)
}

/// `(O, C, 3, 3)` weights of a stride-2 conv → `(O, 4·C, 2, 2)` weights of a stride-1 conv
/// over the input's space-to-depth form: input channel `4c + 2a + b` at tap `(i, j)` is the
/// original tap `(2i + a, 2j + b)` of channel `c`, zero where that is outside 3×3.
pub fn strided_weights(w: &Tensor) -> Result<Tensor> {
    let (o, c, kh, kw) = w.dims4()?;
    if (kh, kw) != (3, 3) {
        candle_core::bail!("stride-2 rewrite needs a 3×3 kernel, got {kh}×{kw}");
    }
    let src = w.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; o * 4 * c * 4];
    for oc in 0..o {
        for ic in 0..c {
            for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (ky, kx) = (2 * i + a, 2 * j + b);
                    if ky < 3 && kx < 3 {
                        out[((oc * 4 * c + ic * 4 + a * 2 + b) * 2 + i) * 2 + j] =
                            src[((oc * c + ic) * 3 + ky) * 3 + kx];
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, (o, 4 * c, 2, 2), &Device::Cpu)
}

/// `(O, C, k, k)` weights of a stride-1 conv (odd k, reflection pad k/2 before) → `(4·O, 4·C,
/// t, t)` weights, t = k/2 + 1, of the same conv between space to depth and depth to space:
/// output parity `(a, b)` of channel `o` at tap `(i, j)` of input parity `(p, q)` of channel
/// `c` is the original tap `(2i + p − a, 2j + q − b)`, zero outside k×k.
pub fn blocked_weights(w: &Tensor) -> Result<Tensor> {
    let (o, c, k, kw) = w.dims4()?;
    if k != kw || k % 2 == 0 {
        candle_core::bail!("blocked rewrite needs an odd square kernel, got {k}×{kw}");
    }
    let t = k / 2 + 1;
    let src = w.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; 4 * o * 4 * c * t * t];
    let parities = [(0usize, 0usize), (0, 1), (1, 0), (1, 1)];
    for oc in 0..o {
        for (oq, &(a, b)) in parities.iter().enumerate() {
            for ic in 0..c {
                for (iq, &(p, q)) in parities.iter().enumerate() {
                    for i in 0..t {
                        for j in 0..t {
                            let (ky, kx) =
                                ((2 * i + p).wrapping_sub(a), (2 * j + q).wrapping_sub(b));
                            if ky < k && kx < k {
                                let dst = (((oc * 4 + oq) * 4 * c + ic * 4 + iq) * t + i) * t + j;
                                out[dst] = src[((oc * c + ic) * k + ky) * k + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, (4 * o, 4 * c, t, t), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::max_abs_diff;
    use crate::ops::pad::upsample2_reflect_pad;

    fn plain_conv(x: &Tensor, w: &Tensor) -> Tensor {
        x.conv2d(w, 0, 1, 1, 1).unwrap()
    }

    /// The subpixel form computes exactly what upsample + reflection pad + conv computes,
    /// at odd and even sizes and at the smallest size reflection allows.
    #[test]
    fn subpixel_rewrite_equals_upsample_pad_conv() {
        let d = Device::Cpu;
        for (h, w) in [(5, 7), (8, 8), (1, 3), (2, 1)] {
            let x = Tensor::randn(0f32, 1., (2, 3, h, w), &d).unwrap();
            let k = Tensor::randn(0f32, 1., (4, 3, 3, 3), &d).unwrap();
            let want = plain_conv(&upsample2_reflect_pad(&x, 1).unwrap(), &k);
            let sub = subpixel_weights(&k).unwrap();
            let got = depth_to_space2(&plain_conv(&edge_pad(&x, 1).unwrap(), &sub)).unwrap();
            assert_eq!(want.dims(), got.dims());
            let diff = max_abs_diff(&want, &got);
            assert!(diff < 1e-4, "{h}x{w}: differs by {diff}");
        }
    }

    /// The space-to-depth form computes the stride-2 conv exactly, at odd and even sizes.
    #[test]
    fn strided_rewrite_equals_pad_and_stride_two_conv() {
        use crate::ops::pad::reflect_pad;
        let d = Device::Cpu;
        for (h, w) in [(8, 8), (7, 9), (2, 3), (5, 2)] {
            let x = Tensor::randn(0f32, 1., (2, 3, h, w), &d).unwrap();
            let k = Tensor::randn(0f32, 1., (4, 3, 3, 3), &d).unwrap();
            let want = reflect_pad(&x, 1).unwrap().conv2d(&k, 0, 2, 1, 1).unwrap();
            let s2d = reflect_pad_space_to_depth2(&x, 1).unwrap();
            let got = plain_conv(&s2d, &strided_weights(&k).unwrap());
            assert_eq!(want.dims(), got.dims(), "{h}x{w}");
            let diff = max_abs_diff(&want, &got);
            assert!(diff < 1e-4, "{h}x{w}: differs by {diff}");
        }
    }

    /// The blocked form computes the 9×9 conv exactly, at odd and even sizes.
    #[test]
    fn blocked_rewrite_equals_pad_and_conv() {
        use crate::ops::pad::reflect_pad;
        let d = Device::Cpu;
        for (h, w, c_in, c_out) in [(10, 12, 3, 4), (9, 7, 2, 3), (5, 6, 3, 2)] {
            let x = Tensor::randn(0f32, 1., (1, c_in, h, w), &d).unwrap();
            let k = Tensor::randn(0f32, 1., (c_out, c_in, 9, 9), &d).unwrap();
            let want = reflect_pad(&x, 4).unwrap().conv2d(&k, 0, 1, 1, 1).unwrap();
            let s2d = reflect_pad_space_to_depth2(&x, 4).unwrap();
            let y = depth_to_space2(&plain_conv(&s2d, &blocked_weights(&k).unwrap())).unwrap();
            let got = y.narrow(2, 0, h).unwrap().narrow(3, 0, w).unwrap();
            assert_eq!(want.dims(), got.dims(), "{h}x{w}");
            let diff = max_abs_diff(&want, &got);
            assert!(diff < 1e-3, "{h}x{w}: differs by {diff}");
        }
    }

    /// Through the public form, including the zero channels added to a 3-channel input.
    #[test]
    fn fast_convs_match_the_layers_they_replace() {
        use crate::ops::pad::reflect_pad;
        let d = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, 3, 11, 8), &d).unwrap();
        let k9 = Tensor::randn(0f32, 1., (5, 3, 9, 9), &d).unwrap();
        let want = reflect_pad(&x, 4).unwrap().conv2d(&k9, 0, 1, 1, 1).unwrap();
        let got = FastConv::blocked(&k9).unwrap().forward(&x).unwrap();
        assert!(max_abs_diff(&want, &got) < 1e-3);
        // Twice blocked, at odd and even sizes (each level rounds up and crops back).
        for (h, w) in [(11, 8), (16, 16), (9, 13), (6, 5)] {
            let x = Tensor::randn(0f32, 1., (1, 3, h, w), &d).unwrap();
            let want = reflect_pad(&x, 4).unwrap().conv2d(&k9, 0, 1, 1, 1).unwrap();
            let got = FastConv::blocked4(&k9).unwrap().forward(&x).unwrap();
            assert_eq!(want.dims(), got.dims(), "{h}x{w}");
            let diff = max_abs_diff(&want, &got);
            assert!(diff < 1e-3, "{h}x{w}: differs by {diff}");
        }
        let k3 = Tensor::randn(0f32, 1., (4, 3, 3, 3), &d).unwrap();
        let want = reflect_pad(&x, 1).unwrap().conv2d(&k3, 0, 2, 1, 1).unwrap();
        let got = FastConv::strided(&k3).unwrap().forward(&x).unwrap();
        assert!(max_abs_diff(&want, &got) < 1e-4);
        let want = plain_conv(&upsample2_reflect_pad(&x, 1).unwrap(), &k3);
        let got = FastConv::subpixel(&k3).unwrap().forward(&x).unwrap();
        assert!(max_abs_diff(&want, &got) < 1e-4);
    }

    /// The depth-to-space layout: channel 4c + 2a + b goes to parity (a, b) of channel c.
    #[test]
    fn depth_to_space_places_parities() {
        let d = Device::Cpu;
        let x = Tensor::arange(0f32, 8., &d)
            .unwrap()
            .reshape((1, 8, 1, 1))
            .unwrap();
        let y = depth_to_space2(&x).unwrap();
        assert_eq!(y.dims(), &[1, 2, 2, 2]);
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![0., 1., 2., 3., 4., 5., 6., 7.]);
    }
}
