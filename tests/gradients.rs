//! Autograd through the style network (padding, instance norm, upsampling, residuals)
//! agrees with finite differences, so training optimises what we think it does.

use atelier::nn::{StyleNet, Variant};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};

/// Values from a fixed seed (candle's CPU generator cannot be seeded), so every run checks the
/// same network at the same point.
fn seeded(rng: &mut rand_chacha::ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

#[test]
fn style_network_gradients_match_finite_differences() {
    let d = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let vm = VarMap::new();
    let net = StyleNet::new(
        Variant::Johnson,
        VarBuilder::from_varmap(&vm, DType::F64, &d),
    )
    .unwrap();
    {
        let data = vm.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let t = data[name].as_tensor();
            let dims = t.dims().to_vec();
            // Weights on PyTorch's scale; norm scales near 1; small biases and shifts.
            let (lo, hi) = if dims.len() == 4 {
                let b = 1.0 / ((dims[1] * dims[2] * dims[3]) as f64).sqrt();
                (-b, b)
            } else if name.starts_with("in") && name.ends_with(".weight") {
                (0.5, 1.5)
            } else {
                (-0.1, 0.1)
            };
            let v = Tensor::from_vec(seeded(&mut rng, t.elem_count(), lo, hi), dims, &d).unwrap();
            data[name].set(&v).unwrap();
        }
    }
    let x = Tensor::from_vec(
        seeded(&mut rng, 3 * 12 * 12, 0.0, 255.0),
        (1, 3, 12, 12),
        &d,
    )
    .unwrap();
    let r = Tensor::from_vec(seeded(&mut rng, 3 * 12 * 12, -1.0, 1.0), (1, 3, 12, 12), &d).unwrap();
    let loss = |net: &StyleNet| {
        net.forward(&x)
            .unwrap()
            .mul(&r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = net
        .forward(&x)
        .unwrap()
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let data = vm.data().lock().unwrap();
    for name in [
        "conv1.conv2d.weight",
        "in1.weight",
        "res2.conv1.conv2d.weight",
        "deconv1.conv2d.weight",
        "in5.bias",
        "deconv3.conv2d.weight",
    ] {
        let var = &data[name];
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let shape = var.as_tensor().shape().clone();
        let fd = |i: usize, eps: f64| {
            let at = |delta: f64| {
                let mut p = orig.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, shape.clone(), &d).unwrap())
                    .unwrap();
                loss(&net)
            };
            let v = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(orig.clone(), shape.clone(), &d).unwrap())
                .unwrap();
            v
        };
        // A ReLU that switches within ±eps makes a central difference average two slopes, which
        // no gradient can match; such a coordinate shows itself by its difference changing with
        // eps, and the next one is checked instead.
        let mut checked = 0;
        for i in (0..orig.len()).step_by(7).take(12) {
            let (coarse, fine) = (fd(i, 1e-6), fd(i, 2.5e-7));
            let scale = coarse.abs().max(1e-3);
            if (coarse - fine).abs() > 1e-4 * scale {
                continue;
            }
            let rel = (coarse - g[i]).abs() / scale;
            assert!(
                rel < 1e-3,
                "{name}[{i}]: autograd {} vs finite differences {coarse}",
                g[i]
            );
            checked += 1;
            if checked == 3 {
                break;
            }
        }
        assert!(
            checked >= 3.min(orig.len()),
            "{name}: only {checked} coordinates away from a ReLU switch"
        );
    }
}
