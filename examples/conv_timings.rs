//! Times each conv shape of the style network through the CPU conv path:
//! `cargo run --release --example conv_timings`.
use atelier::ops::cpu_conv::{conv2d, ConvShape};
use std::time::Instant;
fn t(name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, hw: usize) {
    let h = hw + k - 1;
    let x: Vec<f32> = (0..c_in * h * h).map(|i| (i % 7) as f32).collect();
    let w: Vec<f32> = (0..c_out * c_in * k * k).map(|i| (i % 5) as f32).collect();
    let s = ConvShape {
        c_in,
        h,
        w: h,
        c_out,
        k,
        stride,
    };
    conv2d(&x, &w, None, s);
    let st = Instant::now();
    for _ in 0..3 {
        conv2d(&x, &w, None, s);
    }
    let ms = st.elapsed().as_secs_f64() * 1e3 / 3.0;
    let macs = (s.out_h() * s.out_w() * c_out * c_in * k * k) as f64;
    println!("{name}: {ms:.1} ms, {:.1} GMAC/s", macs / ms / 1e6);
}
fn main() {
    t("conv1 9x9 3->32 @512", 3, 32, 9, 1, 512);
    t("conv2 3x3 s2 32->64 @512", 32, 64, 3, 2, 512);
    t("conv3 3x3 s2 64->128 @256", 64, 128, 3, 2, 256);
    t("res 3x3 128->128 @128", 128, 128, 3, 1, 128);
    t("deconv1 3x3 128->64 @256", 128, 64, 3, 1, 256);
    t("deconv2 3x3 64->32 @512", 64, 32, 3, 1, 512);
    t("deconv3 9x9 32->3 @512", 32, 3, 9, 1, 512);
}
