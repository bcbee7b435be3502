//! The bundled gallery in models/: six trained styles, each loadable, documented and
//! visibly stylising.

mod common;

use atelier::model::format::read_thumbnail;
use atelier::model::registry::{Origin, Registry};
use atelier::stylize::{Hooks, Stylizer, Tiling};
use candle_core::Device;
use std::path::Path;

#[test]
fn six_bundled_styles_with_metadata_thumbnails_and_real_output() {
    let reg = Registry {
        bundled_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("models")),
        user_dir: tempfile::tempdir().unwrap().path().join("none"),
    };
    let (entries, errors) = reg.list();
    assert!(errors.is_empty(), "{errors:?}");
    let stems: Vec<String> = entries
        .iter()
        .map(|e| e.path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for s in [
        "starry_night",
        "the_scream",
        "wave",
        "udnie",
        "composition_vii",
        "the_shipwreck_of_the_minotaur",
    ] {
        assert!(stems.iter().any(|x| x == s), "missing {s}: {stems:?}");
    }
    let photo = common::photo(96, 64);
    for e in &entries {
        assert_eq!(e.origin, Origin::Bundled);
        let m = &e.meta;
        assert!(
            m.title.is_some() && m.artist.is_some() && m.year.is_some(),
            "{m:?}"
        );
        assert_eq!(m.license.as_deref(), Some("public domain"));
        let t = m.training.as_ref().expect("training record");
        assert_eq!(t["iterations"], 3000);
        assert!(t["card"].as_str().unwrap().contains("H100"));
        assert!(t["minutes"].as_f64().unwrap() > 0.0);
        let png = read_thumbnail(&e.path).unwrap().expect("thumbnail");
        assert!(image::load_from_memory(&png).is_ok());
        let s = Stylizer::load(&e.path, &Device::Cpu).unwrap();
        let out = s
            .stylize_raw(&photo, Tiling::Off, &mut Hooks::default())
            .unwrap();
        // A trained style changes the photo a lot, but keeps its layout (not noise).
        let psnr = common::psnr(&out, &photo);
        assert!(
            psnr < 22.0,
            "{}: output too close to the photo ({psnr:.1} dB)",
            m.name
        );
    }
}
