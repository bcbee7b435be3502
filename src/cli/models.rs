use atelier::model::registry::{Origin, Registry};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let registry = Registry::from_env();
    let (entries, errors) = registry.list();
    if a.json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.meta.name, "variant": e.meta.variant, "origin": origin(e.origin),
                    "title": e.meta.title, "artist": e.meta.artist, "source": e.meta.source,
                    "license": e.meta.license, "path": e.path,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        if entries.is_empty() {
            println!("No styles yet. Import one with `atelier import MODEL`.");
        } else {
            println!(
                "{:<20} {:<8} {:<8} {:<40} {:<16} PATH",
                "NAME", "VARIANT", "ORIGIN", "SOURCE", "LICENCE"
            );
            for e in &entries {
                let source = match (&e.meta.title, &e.meta.artist, &e.meta.source) {
                    (Some(t), Some(a), _) => format!("{t} ({a})"),
                    (_, _, Some(s)) => s.clone(),
                    _ => "-".into(),
                };
                println!(
                    "{:<20} {:<8} {:<8} {:<40} {:<16} {}",
                    e.meta.name,
                    e.meta.variant,
                    origin(e.origin),
                    truncate(&source, 40),
                    e.meta.license.as_deref().unwrap_or("-"),
                    e.path.display()
                );
            }
        }
        println!(
            "\nbundled: {}\nyours:   {}",
            registry
                .bundled_dir
                .as_ref()
                .map_or("(none)".into(), |d| d.display().to_string()),
            registry.user_dir.display()
        );
    }
    for e in &errors {
        eprintln!("warning: skipped {e}");
    }
    for (name, paths) in Registry::duplicate_names(&entries) {
        let files: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "warning: {} styles are named '{name}' ({}); `--style {name}` will refuse until all but one are renamed — or pass a path",
            paths.len(),
            files.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn origin(o: Origin) -> &'static str {
    match o {
        Origin::Bundled => "bundled",
        Origin::User => "user",
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}
