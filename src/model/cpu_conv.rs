//! A faster CPU convolution for inference.
//!
//! candle's CPU conv builds im2col tiles of 512 pixels and multiplies them one by one;
//! for these networks (9×9 kernels, 128-channel 3×3 convs) that is 20–100× slower
//! than the machine can go. Here a conv becomes a few large GEMMs (the `gemm` crate,
//! which dispatches to AVX2/AVX-512 at run time):
//! - many input channels: one GEMM per kernel tap over a *shifted view* of the padded
//!   input, with no im2col copy at all (the view's rows are channels, its columns are
//!   pixels in "wide" row-major order; the few columns that wrap around a row are
//!   computed and thrown away);
//! - few input channels (the first 9×9 layer): a row-chunked im2col and one GEMM.
//!
//! Work is split into bands of output rows processed in parallel, each small enough
//! that its output stays in cache across the taps.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Shape of a padded NCHW input (batch 1) and a square kernel.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        (self.h - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w - self.k) / self.stride + 1
    }
}

/// `x`: `[c_in, h, w]` (already padded), `weight`: `[c_out, c_in, k, k]`.
/// Returns `[c_out, out_h, out_w]`.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: ConvShape) -> Vec<f32> {
    assert_eq!(x.len(), s.c_in * s.h * s.w);
    assert_eq!(weight.len(), s.c_out * s.c_in * s.k * s.k);
    assert!(s.h >= s.k && s.w >= s.k);
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut out = vec![0f32; s.c_out * oh * ow];
    if s.c_in * s.k * s.k <= 512 || s.stride != 1 {
        conv_im2col(x, weight, &mut out, s);
    } else {
        conv_shifted(x, weight, &mut out, s);
    }
    if let Some(b) = bias {
        out.par_chunks_mut(oh * ow)
            .zip(b.par_iter())
            .for_each(|(plane, &b)| plane.iter_mut().for_each(|v| *v += b));
    }
    out
}

/// Splits `total_rows` output rows into `[y0, y1)` bands whose working set is about
/// 1 MB (`bytes_per_row` each), with at least a few bands per thread so the pool stays busy.
fn bands(bytes_per_row: usize, total_rows: usize) -> Vec<(usize, usize)> {
    const TARGET: usize = 1 << 20;
    let threads = rayon::current_num_threads().max(1);
    let by_cache = (TARGET / bytes_per_row.max(1)).max(1);
    let by_parallelism = total_rows.div_ceil(4 * threads).max(1);
    let rows = by_cache.min(by_parallelism).max(1);
    (0..total_rows)
        .step_by(rows)
        .map(|y| (y, (y + rows).min(total_rows)))
        .collect()
}

/// Per-tap GEMMs over shifted views; stride 1 only.
fn conv_shifted(x: &[f32], weight: &[f32], out: &mut [f32], s: ConvShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let plane = s.h * s.w;
    let taps = s.k * s.k;
    // Weights as [tap][c_out][c_in] so each tap's matrix is contiguous.
    let mut wt = vec![0f32; taps * s.c_out * s.c_in];
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            for t in 0..taps {
                wt[(t * s.c_out + co) * s.c_in + ci] = weight[(co * s.c_in + ci) * taps + t];
            }
        }
    }
    let results: Vec<(usize, Vec<f32>)> = bands(s.c_out * s.w * 4, oh)
        .into_par_iter()
        .map(|(y0, y1)| {
            // "Wide" output: rows of width s.w, of which the first ow columns are valid.
            // The last row may stop early: columns past ow are never needed.
            let n = (y1 - y0 - 1) * s.w + ow;
            let mut wide = vec![0f32; s.c_out * n];
            for t in 0..taps {
                let (kh, kw) = (t / s.k, t % s.k);
                let offset = (y0 + kh) * s.w + kw;
                // SAFETY: every read is within x: the largest index touched is
                // (c_in-1)*plane + offset + n - 1 < c_in*plane since y1 + kh <= h and
                // ow - 1 + kw < w; dst is our own buffer of c_out × n.
                unsafe {
                    gemm(
                        s.c_out,
                        n,
                        s.c_in,
                        wide.as_mut_ptr(),
                        1,
                        n as isize,
                        t > 0,
                        wt.as_ptr().add(t * s.c_out * s.c_in),
                        1,
                        s.c_in as isize,
                        x.as_ptr().add(offset),
                        1,
                        plane as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
            (y0, wide)
        })
        .collect();
    scatter_bands(out, &results, s.c_out, oh, ow, s.w);
}

/// Row-chunked im2col + one GEMM per band; any stride.
fn conv_im2col(x: &[f32], weight: &[f32], out: &mut [f32], s: ConvShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let kk = s.c_in * s.k * s.k;
    let results: Vec<(usize, Vec<f32>)> = bands(kk * ow * 4, oh)
        .into_par_iter()
        .map(|(y0, y1)| {
            let n = (y1 - y0) * ow;
            let mut col = vec![0f32; kk * n];
            for ci in 0..s.c_in {
                for kh in 0..s.k {
                    for kw in 0..s.k {
                        let r = (ci * s.k + kh) * s.k + kw;
                        let dst = &mut col[r * n..(r + 1) * n];
                        for (j, y) in (y0..y1).enumerate() {
                            let src = &x[ci * s.h * s.w + (y * s.stride + kh) * s.w + kw..];
                            let d = &mut dst[j * ow..(j + 1) * ow];
                            if s.stride == 1 {
                                d.copy_from_slice(&src[..ow]);
                            } else {
                                for (i, v) in d.iter_mut().enumerate() {
                                    *v = src[i * s.stride];
                                }
                            }
                        }
                    }
                }
            }
            let mut band = vec![0f32; s.c_out * n];
            // SAFETY: weight is c_out × kk row-major, col is kk × n, band is c_out × n.
            unsafe {
                gemm(
                    s.c_out,
                    n,
                    kk,
                    band.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    weight.as_ptr(),
                    1,
                    kk as isize,
                    col.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            (y0, band)
        })
        .collect();
    scatter_bands(out, &results, s.c_out, oh, ow, ow);
}

/// Copies per-band `[c_out, rows, stride]` buffers into `[c_out, oh, ow]`.
fn scatter_bands(
    out: &mut [f32],
    bands: &[(usize, Vec<f32>)],
    c_out: usize,
    oh: usize,
    ow: usize,
    stride: usize,
) {
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(co, plane)| {
            for (y0, buf) in bands {
                let n = buf.len() / c_out;
                let src = &buf[co * n..(co + 1) * n];
                let rows = (n + stride - ow) / stride;
                for r in 0..rows {
                    plane[(y0 + r) * ow..(y0 + r + 1) * ow]
                        .copy_from_slice(&src[r * stride..r * stride + ow]);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn check(c_in: usize, c_out: usize, k: usize, stride: usize, h: usize, w: usize) {
        let d = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, c_in, h, w), &d).unwrap();
        let wt = Tensor::randn(0f32, 1., (c_out, c_in, k, k), &d).unwrap();
        let b = Tensor::randn(0f32, 1., c_out, &d).unwrap();
        let expect = x
            .conv2d(&wt, 0, stride, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, c_out, 1, 1)).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let s = ConvShape {
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
        };
        let got = conv2d(
            &x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &wt.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            Some(&b.to_vec1::<f32>().unwrap()),
            s,
        );
        assert_eq!(got.len(), expect.len());
        let max_err = got
            .iter()
            .zip(&expect)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_err < 1e-3 * (c_in * k * k) as f32,
            "max err {max_err} for {s:?}"
        );
    }

    #[test]
    fn matches_candle_conv() {
        check(3, 32, 9, 1, 29, 37);
        check(32, 64, 3, 2, 30, 31);
        check(64, 128, 3, 2, 17, 16);
        check(128, 128, 3, 1, 21, 19);
        check(32, 3, 9, 1, 40, 33);
        check(64, 32, 3, 1, 9, 200);
    }
}
