use atelier::model::{StyleNet, Variant};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
fn hwm() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap()
        .to_string()
}
fn main() {
    let d = Device::Cpu;
    let size: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(128);
    let vm = VarMap::new();
    let net = StyleNet::new(
        Variant::Johnson,
        VarBuilder::from_varmap(&vm, DType::F32, &d),
    )
    .unwrap();
    let x = (Tensor::rand(0f32, 1f32, (4, 3, size, size), &d).unwrap() * 255.0).unwrap();
    println!("start {}", hwm());
    let y = net.forward(&x).unwrap();
    println!("fwd {}", hwm());
    let l = y.sqr().unwrap().mean_all().unwrap();
    let _g = l.backward().unwrap();
    println!("net bwd {}", hwm());
    let vgg = atelier::train::vgg::Vgg16::load(
        std::path::Path::new("models/vgg16-imagenet-keras-conv1_1-relu4_3.f16.safetensors"),
        &d,
    )
    .unwrap();
    let x2 = x.clone();
    let v = candle_core::Var::from_tensor(&x2).unwrap();
    let f = vgg.features(v.as_tensor()).unwrap();
    println!("vgg fwd {}", hwm());
    let l = f[3].sqr().unwrap().mean_all().unwrap();
    let _g = l.backward().unwrap();
    println!("vgg bwd {}", hwm());
}
