//! The default training recipe (docs/training.md): which layers the loss reads, the scale the
//! painting is seen at, and that run folders made before a default changed resume with the
//! settings they started with.

mod common;

use atelier::train::{self, loss, TrainConfig};
use std::path::{Path, PathBuf};

fn painting(dir: &Path, w: u32, h: u32) -> PathBuf {
    let p = dir.join(format!("painting_{w}x{h}.png"));
    common::photo(w, h).save(&p).unwrap();
    p
}

fn config(style: PathBuf) -> TrainConfig {
    TrainConfig::new(
        style,
        PathBuf::from("photos"),
        PathBuf::from("runs/x"),
        "x".into(),
    )
}

fn longest(cfg: &TrainConfig) -> u32 {
    let img = train::load_style_image(cfg).unwrap();
    img.width().max(img.height())
}

#[test]
fn the_default_loss_reads_johnsons_four_style_layers_and_content_at_relu3_3() {
    let spec = config(PathBuf::new()).loss_spec();
    assert_eq!(
        spec.style_layers,
        ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    );
    assert_eq!(spec.content_layer, "relu3_3");
    assert_eq!(spec.scaling, loss::Scaling::Normalised);
    // The strength control changes the weight only, never the layers.
    let mut bold = config(PathBuf::new());
    bold.set_strength(loss::Strength::Bold);
    assert_eq!(bold.loss_spec().style_layers, spec.style_layers);
    assert!(bold.style_weight > spec.style_weight);
}

#[test]
fn a_painting_is_seen_at_512_px_unless_it_is_smaller_or_the_user_asks() {
    let tmp = tempfile::tempdir().unwrap();
    let big = config(painting(tmp.path(), 1000, 600));
    assert_eq!(big.style_cap, train::DEFAULT_STYLE_CAP);
    let img = train::load_style_image(&big).unwrap();
    assert_eq!(img.width().max(img.height()), 512);
    assert_eq!((img.width(), img.height()), (512, 307), "aspect kept");
    // A small painting is never blown up.
    assert_eq!(longest(&config(painting(tmp.path(), 300, 200))), 300);
    // --style-size wins, either way.
    let mut asked = config(painting(tmp.path(), 1000, 600));
    asked.style_size = Some(800);
    assert_eq!(longest(&asked), 800);
}

#[test]
fn a_run_folder_from_before_the_512_px_default_keeps_its_1024_px_painting() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(painting(tmp.path(), 1200, 600));
    let mut json = serde_json::to_value(&cfg).unwrap();
    // What stop-14 run folders wrote: no `style_cap`, explicit layers.
    json.as_object_mut().unwrap().remove("style_cap");
    json["style_layers"] =
        serde_json::json!(["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]);
    let old: TrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.style_cap, 1024);
    assert_eq!(longest(&old), 1024);
    assert_eq!(old.loss_spec().style_layers.len(), 5);
}
