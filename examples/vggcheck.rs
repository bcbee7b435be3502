use candle_core::{Device, Tensor};
fn main() {
    let d = Device::Cpu;
    let vgg = atelier::train::vgg::Vgg16::load(
        std::path::Path::new("models/vgg16-imagenet-keras-conv1_1-relu4_3.f16.safetensors"),
        &d,
    )
    .unwrap();
    let x = Tensor::read_npy("/tmp/vgg_in.npy").unwrap();
    let f = vgg.features(&x).unwrap();
    f[0].write_npy("/tmp/vgg_f0.npy").unwrap();
    f[1].write_npy("/tmp/vgg_f1.npy").unwrap();
}
