//! The loss network's hand-written backward pass (what CUDA training runs) gives the same
//! loss values and the same gradient with respect to the stylised image as candle's autograd.

mod common;

use atelier::train::loss::{photo_gram_energy, LossSpec, Perceptual, Strength};
use atelier::train::vgg::Vgg16;
use candle_core::{Device, Tensor, Var};

#[test]
fn hand_written_loss_gradient_matches_autograd_raw() {
    check(&LossSpec::raw(1e5, 3e6, 0.0));
}

/// The default recipe: its content layer (relu3_3) is also a style layer, so two gradients
/// meet at one tap, and it reaches block 5.
#[test]
fn hand_written_loss_gradient_matches_autograd_normalised() {
    // Smoothness goes through autograd on both paths (`train::step` adds it); what is written by
    // hand is the loss network's part.
    let mut spec = LossSpec::normalised(Strength::Bold);
    spec.tv_weight = 0.0;
    check(&spec);
}

fn check(spec: &LossSpec) {
    let tmp = tempfile::tempdir().unwrap();
    let d = Device::Cpu;
    let vgg_path = common::tiny_vgg(tmp.path());
    let style = (Tensor::rand(0f32, 1f32, (1, 3, 24, 24), &d).unwrap() * 255.0).unwrap();
    // Odd sizes after the second pool (20 → 10 → 5 → 2) exercise the dropped row and column.
    let x = (Tensor::rand(0f32, 1f32, (2, 3, 20, 20), &d).unwrap() * 255.0).unwrap();
    let vgg = Vgg16::load(&vgg_path, &d).unwrap();
    let energy = photo_gram_energy(&vgg, &x, spec).unwrap();
    let objective = Perceptual::new(vgg, &style, spec, Some(&energy)).unwrap();
    let y =
        Var::from_tensor(&(Tensor::rand(0f32, 1f32, (2, 3, 20, 20), &d).unwrap() * 255.0).unwrap())
            .unwrap();

    let auto = objective.compute(&x, y.as_tensor()).unwrap();
    let grads = auto.total.backward().unwrap();
    let auto_grad = grads.get(y.as_tensor()).unwrap();

    let (manual, manual_grad) = objective.compute_with_grad(&x, y.as_tensor()).unwrap();

    let scalar = |t: &Tensor| t.to_scalar::<f32>().unwrap() as f64;
    for (name, a, m) in [
        ("content", &auto.content, &manual.content),
        ("style", &auto.style, &manual.style),
        ("total", &auto.total, &manual.total),
    ] {
        let (a, m) = (scalar(a), scalar(m));
        assert!(a > 0.0, "{name} loss is {a}");
        assert!(
            (a - m).abs() <= 1e-4 * a.abs(),
            "{name}: autograd {a}, by hand {m}"
        );
    }
    assert_eq!(manual_grad.dims(), auto_grad.dims());
    let max_abs = |t: &Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let diff = max_abs(&(&manual_grad - auto_grad).unwrap());
    let scale = max_abs(auto_grad);
    assert!(scale > 0.0, "the autograd gradient is zero");
    assert!(
        diff <= 1e-4 * scale,
        "largest difference {diff} against a largest gradient of {scale}"
    );
}
