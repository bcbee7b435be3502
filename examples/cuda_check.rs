//! Checks atelier's CUDA ops against candle's CPU compositions in f64: the cuDNN conv
//! (`atelier::ops::cudnn`) and the fused kernels (`atelier::ops::cuda`: reflection
//! padding and upsampling, instance norm + ReLU, VGG16's bias + ReLU and max pooling), their
//! outputs and the gradients of every input, at the networks' shapes.
//! Run on the GPU machine (a `--features cudnn` build):
//!   cargo build --release --features cudnn --example cuda_check
//!   ./cuda_check            (ATELIER_TF32=0 for full f32 convolutions)
//! Prints each error relative to the reference's largest magnitude; exits non-zero when one
//! exceeds 1e-2 (TF32 keeps 10 mantissa bits: expect ~1e-3; f32 math: ~1e-6).
use atelier::device::DeviceChoice;
use atelier::nn::norm;
use atelier::ops::pool::max_pool_2x2;
use atelier::ops::{cudnn, pad};
use candle_core::{DType, Device, Tensor, Var};

fn rel_err(a: &Tensor, reference: &Tensor) -> f64 {
    let a = a
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let scale = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let diff = (a - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    diff / scale.max(1e-30)
}

/// Runs `f` on `inputs` (all differentiated) on the CPU in f64 and on `dev` in f32, and
/// returns the relative errors of the output and of each input's gradient.
fn compare(dev: &Device, inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Tensor) -> Vec<f64> {
    let cpu: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let cpu_t: Vec<Tensor> = cpu.iter().map(|v| v.as_tensor().clone()).collect();
    let y_ref = f(&cpu_t);
    let r = Tensor::randn(0f64, 1., y_ref.dims(), &Device::Cpu).unwrap();
    let g_ref = y_ref
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let to_gpu = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_device(dev).unwrap();
    let gpu: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(&to_gpu(t)).unwrap())
        .collect();
    let gpu_t: Vec<Tensor> = gpu.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&gpu_t);
    let g = y
        .mul(&to_gpu(&r))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut errs = vec![rel_err(&y, &y_ref)];
    for (a, b) in gpu_t.iter().zip(&cpu_t) {
        errs.push(rel_err(g.get(a).unwrap(), g_ref.get(b).unwrap()));
    }
    errs
}

fn randn(dims: &[usize], scale: f64, shift: f64) -> Tensor {
    ((Tensor::randn(0f64, 1., dims, &Device::Cpu).unwrap() * scale).unwrap() + shift).unwrap()
}

fn main() {
    atelier::tuning::Tuning::from_env().install();
    let dev = DeviceChoice::Cuda(0).open().expect("a CUDA device");
    let mut worst = 0f64;
    let mut report = |name: &str, errs: Vec<f64>| {
        let list: Vec<String> = errs.iter().map(|e| format!("{e:.1e}")).collect();
        println!("{name:34} y, d(inputs): {}", list.join("  "));
        worst = errs.iter().copied().fold(worst, f64::max);
    };
    for (name, x, w, stride, pad) in [
        ("conv1 9x9", [2, 3, 40, 40], [32, 3, 9, 9], 1, 0),
        ("conv2 3x3 s2 (odd)", [2, 32, 34, 34], [64, 32, 3, 3], 2, 0),
        ("conv3 3x3 s2", [2, 64, 35, 35], [128, 64, 3, 3], 2, 0),
        ("res 3x3", [2, 128, 18, 18], [128, 128, 3, 3], 1, 0),
        ("vgg 3x3 pad 1", [2, 64, 32, 32], [128, 64, 3, 3], 1, 1),
        ("deconv3 9x9", [2, 32, 40, 40], [3, 32, 9, 9], 1, 0),
    ] {
        let conv = move |t: &[Tensor]| {
            if t[0].device().is_cpu() {
                t[0].conv2d(&t[1], pad, stride, 1, 1).unwrap()
            } else {
                cudnn::conv2d(&t[0], &t[1], stride, pad).unwrap()
            }
        };
        report(
            &format!("conv {name}"),
            compare(&dev, &[randn(&x, 1., 0.), randn(&w, 0.1, 0.)], &conv),
        );
    }
    report(
        "reflect pad 4",
        compare(&dev, &[randn(&[2, 32, 20, 18], 1., 0.)], &|t| {
            pad::reflect_pad(&t[0], 4).unwrap()
        }),
    );
    report(
        "upsample x2 + reflect pad 1",
        compare(&dev, &[randn(&[2, 16, 9, 11], 1., 0.)], &|t| {
            pad::upsample2_reflect_pad(&t[0], 1).unwrap()
        }),
    );
    report(
        "max pool 2x2 (odd sizes)",
        compare(&dev, &[randn(&[2, 8, 9, 11], 1., 0.)], &|t| {
            max_pool_2x2(&t[0]).unwrap()
        }),
    );
    report(
        "bias + relu",
        compare(
            &dev,
            &[randn(&[2, 8, 7, 6], 1., 0.), randn(&[8], 1., 0.)],
            &|t| {
                if t[0].device().is_cpu() {
                    t[0].broadcast_add(&t[1].reshape((1, 8, 1, 1)).unwrap())
                        .unwrap()
                        .relu()
                        .unwrap()
                } else {
                    atelier::ops::cuda::bias_relu(&t[0], &t[1]).unwrap()
                }
            },
        ),
    );
    for (dims, relu) in [
        ([2, 16, 12, 10], true),
        ([2, 16, 12, 10], false),
        ([1, 4, 80, 70], true),
    ] {
        let c = dims[1];
        report(
            &format!("instance norm {dims:?} relu {relu}"),
            compare(
                &dev,
                &[
                    randn(&dims, 3., 5.),
                    randn(&[c], 0.5, 1.),
                    randn(&[c], 0.5, 0.),
                ],
                &|t| {
                    let norm =
                        norm::InstanceNorm::from_tensors(t[1].clone(), t[2].clone(), 1e-5).unwrap();
                    norm.forward_with(&t[0], None, relu).unwrap()
                },
            ),
        );
    }
    // Adam: three steps with the same gradients, CPU composed update in f64 vs the CUDA one.
    {
        let p0 = randn(&[64, 32, 3, 3], 0.1, 0.);
        let grads: Vec<Tensor> = (0..3).map(|_| randn(&[64, 32, 3, 3], 1e-3, 0.)).collect();
        let run = |d: &Device, dtype: DType| {
            let p = Var::from_tensor(&p0.to_dtype(dtype).unwrap().to_device(d).unwrap()).unwrap();
            let mut adam =
                atelier::train::adam::Adam::new(vec![("w".into(), p.clone())], 1e-3).unwrap();
            for g in &grads {
                // A loss whose gradient with respect to p is g.
                let g = g.to_dtype(dtype).unwrap().to_device(d).unwrap();
                let gs = p
                    .as_tensor()
                    .mul(&g)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                adam.apply(&gs).unwrap();
            }
            p.as_tensor().clone()
        };
        let reference = run(&Device::Cpu, DType::F64);
        let moved = (&reference - &p0).unwrap();
        let gpu = run(&dev, DType::F32);
        let moved_gpu = (gpu
            .to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            - &p0)
            .unwrap();
        report("adam, 3 steps (update)", vec![rel_err(&moved_gpu, &moved)]);
    }
    println!(
        "worst relative error {worst:.2e} (tf32 {}, fused ops {})",
        atelier::device::tf32_enabled(),
        atelier::tuning::current().fused_kernels
    );
    if worst > 1e-2 {
        std::process::exit(1);
    }
}
