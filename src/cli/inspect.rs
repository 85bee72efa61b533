//! `geofuse inspect`: a pipeline's scenes (grids, bands, nodata, co-registration) or one raster.

use std::path::PathBuf;

use crate::pipeline;
use crate::scene;

#[derive(clap::Args)]
pub(super) struct InspectArgs {
    /// Pipeline file (TOML), or a single raster.
    input: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `geofuse inspect`.
pub(super) fn cmd_inspect(a: InspectArgs) -> crate::Result<()> {
    inspect(&a.input, a.json)
}

fn inspect(input: &std::path::Path, json: bool) -> crate::Result<()> {
    let is_toml = input.extension().is_some_and(|e| e == "toml");
    if !is_toml {
        let info = crate::io::reader::raster_info(input)?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&info).unwrap_or_default()
            );
        } else {
            print_raster(&info);
        }
        return Ok(());
    }
    let p = pipeline::load_pipeline(input, None)?;
    let mut all = Vec::new();
    for s in &p.scenes {
        let mut files = vec![
            ("optical", s.optical.path.clone()),
            ("sar", s.sar.path.clone()),
        ];
        if let Some(ss) = &s.season {
            files = vec![
                ("optical (first date)", ss.optical[0].path.clone()),
                ("sar (first date)", ss.sar[0].path.clone()),
            ];
            files.extend(ss.masks.first().map(|m| ("mask (first date)", m.clone())));
        }
        if s.catalogue.is_some() {
            // A catalogue scene's rasters are its Items' assets, stacked when it is prepared.
            files.clear();
        }
        files.extend(s.labels.clone().map(|l| ("labels", l)));
        files.extend(
            s.mask
                .as_ref()
                .map(|m| ("mask", m.path.clone()))
                .filter(|_| s.catalogue.is_none() && s.season.is_none()),
        );
        if !json {
            println!("scene {}", s.name);
            if let Some(c) = &s.catalogue {
                print_catalogue_scene(c);
            }
            if let Some(ss) = &s.season {
                print_season(ss);
            }
        }
        let mut infos = Vec::new();
        for (what, f) in files {
            let info = crate::io::reader::raster_info(&f)?;
            if !json {
                print!("  {what}: ");
                print_raster(&info);
            }
            infos.push(info);
        }
        let work = std::env::temp_dir().join(format!("geofuse-inspect-{}", std::process::id()));
        let verdict = scene::prepare_scene(&p, s, &work);
        let _ = std::fs::remove_dir_all(&work);
        let verdict = verdict?;
        if json {
            all.push(serde_json::json!({"scene": s.name, "files": infos, "catalogue": s.catalogue, "season": s.season, "coregistration": verdict.coregistration}));
        } else {
            println!("  co-registration:");
            for v in &verdict.coregistration {
                println!("    {v}");
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    Ok(())
}

/// The Items and assets behind a catalogue scene.
fn print_catalogue_scene(c: &crate::config::catalogue::CatalogueScene) {
    let ids = |v: &[crate::config::catalogue::SourceItem]| {
        v.iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  optical Items: {}", ids(&c.optical_items));
    println!("  SAR Items: {}", ids(&c.sar_items));
    for (band, r, refs) in &c.bands {
        let keys: Vec<&str> = refs.iter().map(|a| a.key.as_str()).collect();
        println!("    {band}: asset {} ({:?})", keys.join(", "), r);
    }
    println!("  reflectance scale and offset from {}", c.offset_source);
    if let Some(p) = &c.problem {
        println!("  problem: {p}");
    }
}

/// A season scene's window, steps and dates.
fn print_season(ss: &crate::config::SeasonScene) {
    let s = &ss.season;
    let span = |v: &[crate::config::season::DatedFile]| match (v.first(), v.last()) {
        (Some(a), Some(b)) => format!("{} dates, {} to {}", v.len(), a.date, b.date),
        _ => "no date".into(),
    };
    println!(
        "  season {} to {}: {} steps of {} days",
        s.start,
        s.end,
        s.steps().len(),
        s.step_days
    );
    println!("    optical: {}", span(&ss.optical));
    println!("    sar: {}", span(&ss.sar));
    let what = if ss.catalogue.is_some() {
        "optical Item days"
    } else {
        "matched files"
    };
    if ss.outside > 0 {
        println!(
            "    {} {what} dated outside the season left out",
            ss.outside
        );
    }
    if let Some(c) = &ss.catalogue {
        let n = |v: &[crate::config::catalogue::CatalogueScene]| {
            v.iter()
                .map(|c| c.optical_items.len() + c.sar_items.len())
                .sum::<usize>()
        };
        println!(
            "    from {} optical and {} SAR Items, stacked when the scene runs",
            n(&c.optical),
            n(&c.sar)
        );
    }
}

/// One raster's grid and bands.
fn print_raster(info: &crate::io::reader::RasterInfo) {
    println!("{}", info.path.display());
    println!("    grid: {}", info.grid.describe());
    for b in &info.bands {
        println!(
            "    band {}: {} {}{}",
            b.index,
            if b.description.is_empty() {
                "(no description)"
            } else {
                &b.description
            },
            b.data_type,
            b.nodata
                .map(|v| format!(", nodata {v}"))
                .unwrap_or_default()
        );
    }
}
