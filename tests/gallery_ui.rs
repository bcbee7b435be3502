//! The style gallery in the real `AtelierApp` with thirty styles: the search narrows the
//! grid, a filtered tile still selects, paintings show in tooltips, a selection made
//! elsewhere is scrolled into view, and user styles can still be renamed and deleted.

#![cfg(feature = "app")]

mod common;

use atelier::app::{AppOptions, AtelierApp};
use atelier::model::format::painting_jpeg;
use atelier::model::registry::{file_stem_for, Registry};
use atelier::model::Variant;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Name, painting, painter, year: the shape of the bundled gallery.
const BUNDLED: &[(&str, &str, &str, &str)] = &[
    (
        "Starry Night",
        "The Starry Night",
        "Vincent van Gogh",
        "1889",
    ),
    ("Sunflowers", "Sunflowers", "Vincent van Gogh", "1888"),
    (
        "Wheat Field",
        "Wheatfield with Crows",
        "Vincent van Gogh",
        "1890",
    ),
    ("The Scream", "The Scream", "Edvard Munch", "1893"),
    (
        "Great Wave",
        "The Great Wave off Kanagawa",
        "Katsushika Hokusai",
        "c. 1831",
    ),
    ("Udnie", "Udnie", "Francis Picabia", "1913"),
    (
        "Composition VII",
        "Composition VII",
        "Wassily Kandinsky",
        "1913",
    ),
    (
        "Shipwreck",
        "The Shipwreck of the Minotaur",
        "J. M. W. Turner",
        "c. 1810",
    ),
    ("The Kiss", "The Kiss", "Gustav Klimt", "1908"),
    (
        "Sudden Shower",
        "Sudden Shower over Shin-Ōhashi Bridge",
        "Utagawa Hiroshige",
        "1857",
    ),
    (
        "Green Jacket",
        "Lady in a Green Jacket",
        "August Macke",
        "1913",
    ),
    ("Rhythm", "Rhythm", "Robert Delaunay", "1932"),
    ("The City", "The City", "Fernand Léger", "1919"),
    ("Tableau I", "Tableau I", "Piet Mondrian", "1921"),
    ("Red Room", "Harmony in Red", "Henri Matisse", "1908"),
    ("Water Lilies", "Water Lilies", "Claude Monet", "1906"),
    ("Sunrise", "Impression, Sunrise", "Claude Monet", "1872"),
    ("Tahiti", "Where Do We Come From?", "Paul Gauguin", "1897"),
    (
        "Flowers",
        "Bouquet of Flowers in a Glass Vase",
        "Ambrosius Bosschaert",
        "1621",
    ),
    (
        "Grande Jatte",
        "A Sunday on La Grande Jatte",
        "Georges Seurat",
        "1884",
    ),
    (
        "Pearl Earring",
        "Girl with a Pearl Earring",
        "Johannes Vermeer",
        "c. 1665",
    ),
    (
        "Moulin",
        "Bal du moulin de la Galette",
        "Pierre-Auguste Renoir",
        "1876",
    ),
    ("Mona Lisa", "Mona Lisa", "Leonardo da Vinci", "c. 1503"),
    ("Card Players", "The Card Players", "Paul Cézanne", "1892"),
    ("American Gothic", "American Gothic", "Grant Wood", "1930"),
    ("Harlequin", "Harlequin with a Guitar", "Juan Gris", "1919"),
    (
        "Fur Traders",
        "Fur Traders Descending the Missouri",
        "George Caleb Bingham",
        "1845",
    ),
    ("Tree of Life", "The Tree of Life", "Gustav Klimt", "1909"),
];
const USER: &[&str] = &["My Cat", "Test Style"];
/// The only styles whose files carry a painting.
const WITH_PAINTING: &[&str] = &["Starry Night", "My Cat"];

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bundled: PathBuf,
    styles: PathBuf,
}

/// Thirty styles: one random network saved under each name (f16, to keep it quick),
/// with a thumbnail, and a painting for a few.
fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (bundled, styles) = (root.join("bundled"), root.join("styles"));
    std::fs::create_dir_all(&bundled).unwrap();
    std::fs::create_dir_all(&styles).unwrap();
    let mut m = common::model(Variant::Johnson);
    let mut png = Vec::new();
    common::photo(40, 40)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    m.thumbnail_png = Some(png);
    let painting = painting_jpeg(&common::photo(120, 90)).unwrap();
    let all = BUNDLED
        .iter()
        .map(|&(n, t, a, y)| (n, Some((t, a, y)), &bundled))
        .chain(USER.iter().map(|&n| (n, None, &styles)));
    for (name, about, dir) in all {
        m.meta.name = name.into();
        m.meta.title = about.map(|a| a.0.into());
        m.meta.artist = about.map(|a| a.1.into());
        m.meta.year = about.map(|a| a.2.into());
        m.painting_jpg = WITH_PAINTING.contains(&name).then(|| painting.clone());
        let path = dir.join(format!("{}.safetensors", file_stem_for(name)));
        m.save(&path, true, true).unwrap();
    }
    Env {
        _tmp: tmp,
        root,
        bundled,
        styles,
    }
}

fn harness(e: &Env, style: Option<&str>) -> Harness<'static, AtelierApp> {
    let opts = AppOptions {
        device: Some("cpu".into()),
        ephemeral: true,
        style: style.map(String::from),
        registry: Some(Registry {
            bundled_dir: Some(e.bundled.clone()),
            user_dir: e.styles.clone(),
        }),
        runs_dir: Some(e.root.join("runs")),
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| AtelierApp::new(cc, opts));
    settle(&mut h);
    h
}

/// Each picture that arrives asks for a repaint, which `Harness::run` would count against
/// its step limit: so first wait for the pictures.
fn settle(h: &mut Harness<'static, AtelierApp>) {
    run_until(h, "the pictures", |h| !h.state().gallery.loading_pictures());
    h.run();
}

fn all_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = BUNDLED
        .iter()
        .map(|s| s.0)
        .chain(USER.iter().copied())
        .collect();
    v.sort_unstable();
    v
}

/// The styles whose tiles are in the window now, sorted.
fn shown(h: &Harness<'static, AtelierApp>) -> Vec<String> {
    let names = all_names();
    let mut v: Vec<String> = h
        .query_all_by_role(Role::Button)
        .filter_map(|n| n.accesskit_node().label())
        .filter(|l| names.contains(&l.as_str()))
        .collect();
    v.sort_unstable();
    v
}

fn search(h: &mut Harness<'static, AtelierApp>, text: &str) {
    h.get_by_role(Role::TextInput).focus();
    h.run();
    h.get_by_role(Role::TextInput)
        .set_text_value_accesskit(text);
    h.run();
}

fn path_of(e: &Env, name: &str) -> PathBuf {
    let dir = if USER.contains(&name) {
        &e.styles
    } else {
        &e.bundled
    };
    dir.join(format!("{}.safetensors", file_stem_for(name)))
}

fn run_until(
    h: &mut Harness<'static, AtelierApp>,
    what: &str,
    done: impl Fn(&mut Harness<'static, AtelierApp>) -> bool,
) {
    let start = Instant::now();
    while !done(h) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn searching_narrows_the_grid_and_a_filtered_tile_still_selects() {
    let e = env();
    let mut h = harness(&e, None);
    h.run();
    assert_eq!(shown(&h), all_names());
    h.get_by_label("Yours (2)");
    h.get_by_label("Bundled (28)");

    // By painter, case-insensitively; several words must all match.
    search(&mut h, "VAN GOGH");
    assert_eq!(shown(&h), ["Starry Night", "Sunflowers", "Wheat Field"]);
    h.get_by_label("Bundled (3 of 28)");
    assert!(h.query_by_label_contains("Yours").is_none());
    search(&mut h, "gogh 1889");
    assert_eq!(shown(&h), ["Starry Night"]);
    // By painting title, and without the accents.
    search(&mut h, "kanagawa");
    assert_eq!(shown(&h), ["Great Wave"]);
    search(&mut h, "cezanne");
    assert_eq!(shown(&h), ["Card Players"]);
    search(&mut h, "ohashi");
    assert_eq!(shown(&h), ["Sudden Shower"]);
    // By year.
    search(&mut h, "1913");
    assert_eq!(shown(&h), ["Composition VII", "Green Jacket", "Udnie"]);
    // By the style's own name, user styles included.
    search(&mut h, "cat");
    assert_eq!(shown(&h), ["My Cat"]);

    search(&mut h, "no such painter");
    assert!(shown(&h).is_empty());
    h.get_by_label("No styles match “no such painter”.");
    // × clears.
    h.get_by_label("×").click();
    h.run();
    assert_eq!(shown(&h), all_names());
    assert_eq!(h.state().gallery.query, "");

    // A tile found by searching selects its style like any other.
    search(&mut h, "klimt");
    assert_eq!(shown(&h), ["The Kiss", "Tree of Life"]);
    h.get_by_label("The Kiss").click();
    h.run();
    let want = path_of(&e, "The Kiss");
    assert_eq!(h.state().gallery.selected.as_ref(), Some(&want));
    assert_eq!(h.state().settings.style.as_ref(), Some(&want));

    // Esc in the field clears it.
    search(&mut h, "munch");
    assert_eq!(shown(&h), ["The Scream"]);
    h.key_press(egui::Key::Escape);
    h.run();
    assert_eq!(shown(&h), all_names());

    // Enter in the field picks the first match.
    search(&mut h, "munch");
    h.key_press(egui::Key::Enter);
    h.run();
    assert_eq!(
        h.state().gallery.selected.as_ref(),
        Some(&path_of(&e, "The Scream"))
    );
}

#[test]
fn a_style_with_a_painting_shows_it_on_hover() {
    let e = env();
    let mut h = harness(&e, None);
    assert!(h.state().gallery.has_painting(&path_of(&e, "Starry Night")));
    assert!(!h.state().gallery.has_painting(&path_of(&e, "Sunflowers")));

    // Both in view, whatever the window's height.
    search(&mut h, "gogh");
    h.get_by_label("Starry Night").hover();
    let painting = "Painting: The Starry Night, Vincent van Gogh, 1889";
    run_until(&mut h, "the tooltip", |h| {
        h.query_by_role_and_label(Role::Image, painting).is_some()
    });
    h.get_by_label("The Starry Night, Vincent van Gogh, 1889");

    // A style without one has the caption and no picture.
    h.get_by_label("Sunflowers").hover();
    run_until(&mut h, "the other tooltip", |h| {
        h.query_by_label("Sunflowers, Vincent van Gogh, 1888")
            .is_some()
    });
    assert!(h.query_all_by_role(Role::Image).next().is_none());
}

#[test]
fn a_style_picked_at_start_is_scrolled_into_view() {
    let e = env();
    let mut h = harness(&e, Some("Water Lilies"));
    h.run();
    assert_eq!(
        h.state().gallery.selected.as_ref(),
        Some(&path_of(&e, "Water Lilies"))
    );
    let tile = h.get_by_label("Water Lilies").rect();
    let top = h.get_by_label("American Gothic").rect();
    // Near the end of 28 bundled tiles, three to a row: far below an 800-px window
    // unless the grid scrolled to it.
    assert!(tile.min.y >= 0.0 && tile.max.y <= 800.0, "{tile:?}");
    assert!(top.max.y < 0.0, "the grid did not scroll: {top:?}");
}

#[test]
fn user_styles_are_renamed_and_deleted_through_the_context_menu() {
    let e = env();
    let mut h = harness(&e, None);
    h.run();
    h.get_by_label("My Cat").click_secondary();
    h.run();
    h.get_by_label("Rename…").click();
    h.run();
    let field = h
        .query_all_by_role(Role::TextInput)
        .find(|n| n.value().as_deref() == Some("My Cat"))
        .expect("the rename field");
    field.set_text_value_accesskit("Kitty");
    h.run();
    h.key_press(egui::Key::Enter);
    settle(&mut h);
    let entry = |h: &Harness<'static, AtelierApp>, name: &str| {
        h.state()
            .gallery
            .entries
            .iter()
            .find(|s| s.meta.name == name)
            .cloned()
    };
    assert!(entry(&h, "My Cat").is_none());
    assert!(entry(&h, "Kitty").is_some());
    h.get_by_label("Kitty");

    // Bundled styles have no menu.
    h.get_by_label("Udnie").click_secondary();
    h.run();
    assert!(h.query_by_label("Delete…").is_none());

    h.get_by_label("Kitty").click_secondary();
    h.run();
    h.get_by_label("Delete…").click();
    h.run();
    h.get_by_label("Keep").click();
    h.run();
    assert!(path_of(&e, "My Cat").is_file());
    h.get_by_label("Kitty").click_secondary();
    h.run();
    h.get_by_label("Delete…").click();
    h.run();
    h.get_by_label("Delete").click();
    h.run();
    assert!(!path_of(&e, "My Cat").exists());
    assert!(entry(&h, "Kitty").is_none());
    assert!(h.query_by_label("Kitty").is_none());
}
