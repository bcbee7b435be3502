//! Autograd through the style network (padding, instance norm, upsampling, residuals)
//! agrees with finite differences, so training optimises what we think it does.

use atelier::nn::{StyleNet, Variant};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};

#[test]
fn style_network_gradients_match_finite_differences() {
    let d = Device::Cpu;
    let vm = VarMap::new();
    let net = StyleNet::new(
        Variant::Johnson,
        VarBuilder::from_varmap(&vm, DType::F64, &d),
    )
    .unwrap();
    let x = (Tensor::rand(0f64, 1f64, (1, 3, 12, 12), &d).unwrap() * 255.0).unwrap();
    let r = Tensor::randn(0f64, 1f64, (1, 3, 12, 12), &d).unwrap();
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
        for i in [0usize, 7, 13] {
            let i = i % orig.len();
            let eps = 1e-6;
            let at = |delta: f64| {
                let mut p = orig.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, shape.clone(), &d).unwrap())
                    .unwrap();
                loss(&net)
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(orig.clone(), shape.clone(), &d).unwrap())
                .unwrap();
            let rel = (fd - g[i]).abs() / fd.abs().max(1e-3);
            assert!(
                rel < 1e-3,
                "{name}[{i}]: autograd {} vs finite differences {fd}",
                g[i]
            );
        }
    }
}
