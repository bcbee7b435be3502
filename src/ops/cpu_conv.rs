//! A faster CPU convolution for inference.
//!
//! candle's CPU conv builds im2col tiles of 512 pixels and multiplies them one by one;
//! for these networks (9×9 kernels, 128-channel 3×3 convs) that is far slower than the
//! machine can go (`docs/benchmarks.md`, 2026-11-27). Here a conv becomes a few large GEMMs (the `gemm` crate,
//! which dispatches to AVX2/AVX-512 at run time):
//! - many input channels: one GEMM per kernel tap over a *shifted view* of the padded
//!   input, with no im2col copy at all (the view's rows are channels, its columns are
//!   pixels in "wide" row-major order; the few columns that wrap around a row are
//!   computed and thrown away);
//! - few input channels (the first 9×9 layer): a row-chunked im2col and one GEMM;
//! - 3×3 stride-1 convs with many channels (the residual blocks and the upsampling
//!   convs, two thirds of the network's arithmetic): Winograd F(2×2, 3×3), which
//!   needs 16 multiplies per 2×2 outputs instead of 36, as 16 GEMMs per band of tiles.
//!
//! Work is split into bands of output rows processed in parallel, each small enough
//! that its output stays in cache across the taps.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread buffer of at least `len` floats, reused across calls so
/// hot loops neither allocate nor zero memory they are about to overwrite. Contents
/// are whatever the last user left.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| *s.borrow_mut() = buf);
    r
}

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
    let len = s.c_out * oh * ow;
    let mut out;
    if s.k == 3 && s.stride == 1 && s.c_in >= 16 && s.c_out >= 8 {
        // Zeroing hundreds of MB that are about to be overwritten costs more than
        // the transforms, so the Winograd path writes into uninitialised memory.
        out = Vec::with_capacity(len);
        conv_winograd(x, weight, &mut out.spare_capacity_mut()[..len], s);
        // SAFETY: conv_winograd writes every one of the `len` output elements.
        unsafe { out.set_len(len) };
    } else {
        out = vec![0f32; len];
        if s.c_in * s.k * s.k <= 512 || s.stride != 1 {
            conv_im2col(x, weight, &mut out, s);
        } else {
            conv_shifted(x, weight, &mut out, s);
        }
    }
    if let Some(b) = bias {
        out.par_chunks_mut(oh * ow)
            .zip(b.par_iter())
            .for_each(|(plane, &b)| plane.iter_mut().for_each(|v| *v += b));
    }
    out
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, all row-major with unit column stride and
/// the given row strides; single-threaded, since callers already run one band per thread.
///
/// # Safety
/// Each pointer must address its whole matrix as described by its shape and row stride.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_rs: isize,
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs,
        accumulate,
        lhs,
        1,
        lhs_rs,
        rhs,
        1,
        rhs_rs,
        alpha,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    );
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
                    matmul(
                        s.c_out,
                        n,
                        s.c_in,
                        wide.as_mut_ptr(),
                        n as isize,
                        t > 0,
                        wt.as_ptr().add(t * s.c_out * s.c_in),
                        s.c_in as isize,
                        x.as_ptr().add(offset),
                        plane as isize,
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
                matmul(
                    s.c_out,
                    n,
                    kk,
                    band.as_mut_ptr(),
                    n as isize,
                    false,
                    weight.as_ptr(),
                    kk as isize,
                    col.as_ptr(),
                    n as isize,
                );
            }
            (y0, band)
        })
        .collect();
    scatter_bands(out, &results, s.c_out, oh, ow, ow);
}

/// A raw output pointer shared by bands that write disjoint pixels.
#[derive(Clone, Copy)]
struct SharedOut(*mut MaybeUninit<f32>);
// SAFETY: each band writes only the output pixels of its own tiles.
unsafe impl Send for SharedOut {}
// SAFETY: as for Send: shared use never writes the same pixel from two bands.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    // A method, so closures capture the whole (Sync) wrapper rather than its raw field.
    fn ptr(&self) -> *mut MaybeUninit<f32> {
        self.0
    }
}

/// Winograd F(2×2, 3×3): U = G g Gᵀ per filter, V = Bᵀ d B per 4×4 input patch,
/// M = U·V as one GEMM per each of the 16 transform positions, Y = Aᵀ M A.
fn conv_winograd(x: &[f32], weight: &[f32], out: &mut [MaybeUninit<f32>], s: ConvShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let (c_in, c_out) = (s.c_in, s.c_out);

    // U as [16][c_out][c_in].
    let mut u = vec![0f32; 16 * c_out * c_in];
    for co in 0..c_out {
        for ci in 0..c_in {
            let g = &weight[(co * c_in + ci) * 9..][..9];
            // G g: 4×3
            let mut gg = [[0f32; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
                gg[0][c] = g0;
                gg[1][c] = 0.5 * (g0 + g1 + g2);
                gg[2][c] = 0.5 * (g0 - g1 + g2);
                gg[3][c] = g2;
            }
            for (r, row) in gg.iter().enumerate() {
                let t = [
                    row[0],
                    0.5 * (row[0] + row[1] + row[2]),
                    0.5 * (row[0] - row[1] + row[2]),
                    row[2],
                ];
                for (c, v) in t.into_iter().enumerate() {
                    u[((r * 4 + c) * c_out + co) * c_in + ci] = v;
                }
            }
        }
    }

    // Bands are runs of tiles within one tile row, so the transforms work on whole
    // rows of pixels (vectorisable); V and M of a band fit in about 1 MB of cache.
    let per_tile = 16 * (c_in + c_out) * 4;
    let max_n = ((1 << 20) / per_tile).clamp(16, 256);
    let mut jobs = Vec::new();
    for ty in 0..th {
        let chunks = tw.div_ceil(max_n);
        let n = tw.div_ceil(chunks);
        jobs.extend((0..tw).step_by(n).map(|tx0| (ty, tx0, (tx0 + n).min(tw))));
    }
    let dst = SharedOut(out.as_mut_ptr());
    jobs.into_par_iter().for_each(|(ty, tx0, tx1)| {
        let n = tx1 - tx0;
        // The 16 transform positions are 16 streams read or written together; a pad
        // keeps their strides off multiples of 4 KiB, which would alias in L1.
        let vs = c_in * n + 48;
        let ms = c_out * n + 48;
        let rw = 2 * n + 2;
        with_scratch(16 * vs + 16 * ms + 8 * rw + 8 * n, |scratch| {
            let (v, rest) = scratch.split_at_mut(16 * vs);
            let (m, rest) = rest.split_at_mut(16 * ms);
            let (rows, rest) = rest.split_at_mut(4 * rw);
            let (t, rest) = rest.split_at_mut(4 * rw);
            let (s0, s1) = rest.split_at_mut(4 * n);
            for ci in 0..c_in {
                let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
                // The band's 4 input rows, zero past the plane's edges.
                let x0 = 2 * tx0;
                let avail = s.w.saturating_sub(x0).min(rw);
                for r in 0..4 {
                    let dst = &mut rows[r * rw..(r + 1) * rw];
                    let y = 2 * ty + r;
                    if y < s.h {
                        dst[..avail].copy_from_slice(&plane[y * s.w + x0..][..avail]);
                        dst[avail..].fill(0.0);
                    } else {
                        dst.fill(0.0);
                    }
                }
                // Bᵀ down the columns, Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]].
                {
                    let (r0, rest) = rows.split_at(rw);
                    let (r1, rest) = rest.split_at(rw);
                    let (r2, r3) = rest.split_at(rw);
                    let (t0, rest) = t.split_at_mut(rw);
                    let (t1, rest) = rest.split_at_mut(rw);
                    let (t2, t3) = rest.split_at_mut(rw);
                    for i in 0..rw {
                        t0[i] = r0[i] - r2[i];
                        t1[i] = r1[i] + r2[i];
                        t2[i] = r2[i] - r1[i];
                        t3[i] = r1[i] - r3[i];
                    }
                }
                // ... and across the rows, each tile's 4 columns starting at 2k.
                for r in 0..4 {
                    let tr = &t[r * rw..(r + 1) * rw];
                    let base = r * 4 * vs + ci * n;
                    let (o0, rest) = v[base..].split_at_mut(vs);
                    let (o1, rest) = rest.split_at_mut(vs);
                    let (o2, o3) = rest.split_at_mut(vs);
                    for k in 0..n {
                        let (a, b, c, d) = (tr[2 * k], tr[2 * k + 1], tr[2 * k + 2], tr[2 * k + 3]);
                        o0[k] = a - c;
                        o1[k] = b + c;
                        o2[k] = c - b;
                        o3[k] = b - d;
                    }
                }
            }
            for e in 0..16 {
                // SAFETY: u[e] is c_out × c_in, v[e] is c_in × n, m[e] is c_out × n, all row-major.
                unsafe {
                    matmul(
                        c_out,
                        n,
                        c_in,
                        m.as_mut_ptr().add(e * ms),
                        n as isize,
                        false,
                        u.as_ptr().add(e * c_out * c_in),
                        c_in as isize,
                        v.as_ptr().add(e * vs),
                        n as isize,
                    );
                }
            }
            let cols = (ow - 2 * tx0).min(2 * n);
            for co in 0..c_out {
                let me = |e: usize| &m[e * ms + co * n..][..n];
                // Aᵀ down the columns, Aᵀ = [[1,1,1,0],[0,1,-1,-1]].
                for c in 0..4 {
                    let (m0, m1, m2, m3) = (me(c), me(4 + c), me(8 + c), me(12 + c));
                    let (a, b) = (&mut s0[c * n..(c + 1) * n], &mut s1[c * n..(c + 1) * n]);
                    for k in 0..n {
                        a[k] = m0[k] + m1[k] + m2[k];
                        b[k] = m1[k] - m2[k] - m3[k];
                    }
                }
                for (dy, sr) in [&*s0, &*s1].into_iter().enumerate() {
                    let oy = 2 * ty + dy;
                    if oy >= oh {
                        break;
                    }
                    // SAFETY: row oy of plane co, columns [2·tx0, 2·tx0 + cols), lies inside
                    // out and belongs to this band alone.
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.ptr().add((co * oh + oy) * ow + 2 * tx0) as *mut f32,
                            cols,
                        )
                    };
                    let (q0, q1, q2, q3) =
                        (&sr[..n], &sr[n..2 * n], &sr[2 * n..3 * n], &sr[3 * n..]);
                    for k in 0..cols / 2 {
                        row[2 * k] = q0[k] + q1[k] + q2[k];
                        row[2 * k + 1] = q1[k] - q2[k] - q3[k];
                    }
                    if cols % 2 == 1 {
                        let k = cols / 2;
                        row[2 * k] = q0[k] + q1[k] + q2[k];
                    }
                }
            }
        });
    });
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
        // Winograd: odd and even output sizes, tiny planes.
        check(32, 16, 3, 1, 3, 3);
        check(32, 16, 3, 1, 4, 7);
        check(48, 24, 3, 1, 35, 18);
    }
}
