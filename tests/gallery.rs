//! The bundled gallery in models/: every style listed in assets/paintings.tsv that ships,
//! each loadable, documented (painting, artist, year, licence, a copy of the painting) and
//! visibly stylising.

mod common;

use atelier::model::format::{read_painting, read_thumbnail};
use atelier::model::registry::{Origin, Registry};
use atelier::stylize::{Hooks, Stylizer, Tiling};
use candle_core::Device;
use std::path::Path;

#[test]
fn bundled_styles_with_metadata_paintings_thumbnails_and_real_output() {
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
    // Every bundled style is one of the documented public-domain paintings.
    let table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/paintings.tsv"))
            .unwrap();
    for s in &stems {
        assert!(
            table.lines().any(|l| l.split('\t').next() == Some(s)),
            "{s} is not in assets/paintings.tsv"
        );
    }
    assert!(entries.len() >= 14, "{} styles", entries.len());
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
        let card = t["card"].as_str().unwrap();
        assert!(card.contains("H100") || card.contains("H200"), "{card}");
        assert!(t["minutes"].as_f64().unwrap() > 0.0);
        let png = read_thumbnail(&e.path).unwrap().expect("thumbnail");
        assert!(image::load_from_memory(&png).is_ok());
        let jpg = read_painting(&e.path)
            .unwrap()
            .expect("a copy of the painting");
        let painting = image::load_from_memory(&jpg).unwrap();
        assert!(painting.width().max(painting.height()) <= 256);
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
