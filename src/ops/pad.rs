//! Padding and pixel-rearranging ops of the style networks, each with a CPU path (a gather in
//! one parallel pass for plain f32 tensors, candle's composition otherwise) and a fused CUDA
//! kernel ([`super::cuda`]) for inference on the GPU.

use super::cuda;
use candle_core::{DType, Device, Tensor};

/// Mirror-pads the two spatial dims of an NCHW tensor (PyTorch's `ReflectionPad2d`).
/// Needs `pad < size` on both dims; callers guarantee a minimum size.
pub fn reflect_pad(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    if cuda::available_for_inference(x) {
        return cuda::remap(x, pad, 1);
    }
    let (_, _, h, w) = x.dims4()?;
    if is_plain_cpu(x) {
        return remap_cpu(x, &reflect_map(h, pad)?, &reflect_map(w, pad)?);
    }
    let x = x.index_select(&reflect_index(h, pad, x.device())?, 2)?;
    x.index_select(&reflect_index(w, pad, x.device())?, 3)
}

fn reflect_index(n: usize, pad: usize, device: &Device) -> candle_core::Result<Tensor> {
    let idx: Vec<u32> = reflect_map(n, pad)?.into_iter().map(|i| i as u32).collect();
    Tensor::new(idx, device)
}

/// Source index of each padded position under reflection padding.
fn reflect_map(n: usize, pad: usize) -> candle_core::Result<Vec<usize>> {
    if pad >= n {
        candle_core::bail!("reflection padding {pad} needs a dimension larger than {n}");
    }
    let last = n as i64 - 1;
    Ok((-(pad as i64)..n as i64 + pad as i64)
        .map(|i| {
            (if i < 0 {
                -i
            } else if i > last {
                2 * last - i
            } else {
                i
            }) as usize
        })
        .collect())
}

/// Nearest ×2 upsampling followed by reflection padding, as one copy.
pub fn upsample2_reflect_pad(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if cuda::available_for_inference(x) {
        return cuda::remap(x, pad, 2);
    }
    let (_, _, h, w) = x.dims4()?;
    if is_plain_cpu(x) {
        let rows: Vec<usize> = reflect_map(2 * h, pad)?
            .into_iter()
            .map(|i| i / 2)
            .collect();
        let cols: Vec<usize> = reflect_map(2 * w, pad)?
            .into_iter()
            .map(|i| i / 2)
            .collect();
        return remap_cpu(x, &rows, &cols);
    }
    reflect_pad(&x.upsample_nearest2d(2 * h, 2 * w)?, pad)
}

/// Replication padding (the border pixel repeated) of the two spatial dims.
pub fn edge_pad(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if cuda::available_for_inference(x) {
        return cuda::edge_pad(x, pad);
    }
    let (_, _, h, w) = x.dims4()?;
    let clamp = |n: usize| -> candle_core::Result<Tensor> {
        let idx: Vec<u32> = (0..n + 2 * pad)
            .map(|i| i.saturating_sub(pad).min(n - 1) as u32)
            .collect();
        Tensor::new(idx, x.device())
    };
    x.index_select(&clamp(h)?, 2)?.index_select(&clamp(w)?, 3)
}

/// Reflection padding by `pad`, then space to depth by 2 (see
/// [`cuda::reflect_pad_s2d`]); odd padded sizes get a zero row or column.
pub fn reflect_pad_space_to_depth2(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if cuda::available_for_inference(x) {
        return cuda::reflect_pad_s2d(x, pad);
    }
    let p = reflect_pad(x, pad)?;
    let (n, c, h, w) = p.dims4()?;
    let p = zero_pad(&p, 0, h % 2, 0, w % 2)?;
    let (h, w) = (h.div_ceil(2), w.div_ceil(2));
    p.reshape((n, c, h, 2, w, 2))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((n, 4 * c, h, w))
}

/// `(N, 4C, H, W)` → `(N, C, 2H, 2W)`: output channel `c` at `(2i + a, 2j + b)` is input
/// channel `4c + 2a + b` at `(i, j)`.
pub fn depth_to_space2(x: &Tensor) -> candle_core::Result<Tensor> {
    if cuda::available_for_inference(x) {
        return cuda::depth_to_space2(x);
    }
    let (n, c4, h, w) = x.dims4()?;
    x.reshape((n, c4 / 4, 2, 2, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((n, c4 / 4, 2 * h, 2 * w))
}

/// CPU f32 tensors outside autograd take the hand-written inference paths.
pub fn is_plain_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op()
}

/// Runs `f` on the f32 values of a CPU tensor in row-major order, without copying
/// when the tensor is already contiguous (the common case between layers).
pub fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let values = cpu.as_slice::<f32>()?;
            let (start, end) = layout
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("tensor is not contiguous".into()))?;
            Ok(f(&values[start..end]))
        }
        _ => candle_core::bail!("expected a CPU tensor"),
    }
}

/// `out[n, c, i, j] = x[n, c, rows[i], cols[j]]`: every padding and nearest-neighbour
/// resize here is such a gather, done in one parallel pass.
fn remap_cpu(x: &Tensor, rows: &[usize], cols: &[usize]) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (rows.len(), cols.len());
    let mut out = vec![0f32; n * c * oh * ow];
    with_cpu_f32(x, |src| {
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(p, plane)| {
                let sp = &src[p * h * w..(p + 1) * h * w];
                for (i, &r) in rows.iter().enumerate() {
                    let srow = &sp[r * w..(r + 1) * w];
                    for (o, &cidx) in plane[i * ow..(i + 1) * ow].iter_mut().zip(cols) {
                        *o = srow[cidx];
                    }
                }
            })
    })?;
    Tensor::from_vec(out, (n, c, oh, ow), x.device())
}

/// Extends an NCHW tensor to at least `min` rows and columns by repeating the last
/// row/column, so networks whose padding needs a minimum size accept tiny images.
pub fn extend_to_min(x: &Tensor, min: usize) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h < min {
        x = x.pad_with_same(2, 0, min - h)?;
    }
    if w < min {
        x = x.pad_with_same(3, 0, min - w)?;
    }
    Ok(x)
}

/// Zero-pads top, bottom, left, right.
pub fn zero_pad(x: &Tensor, t: usize, b: usize, l: usize, r: usize) -> candle_core::Result<Tensor> {
    let x = if t + b > 0 {
        x.pad_with_zeros(2, t, b)?
    } else {
        x.clone()
    };
    if l + r > 0 {
        x.pad_with_zeros(3, l, r)
    } else {
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_matches_pytorch() {
        let x = Tensor::arange(0f32, 4., &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let x = x.pad_with_same(2, 1, 1).unwrap();
        let y = reflect_pad(&x, 2).unwrap();
        let row: Vec<f32> = y
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(row, vec![2., 1., 0., 1., 2., 3., 2., 1.]);
    }
}
