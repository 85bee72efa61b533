//! The data commands: `synth`, `search`, `split-dates`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub(super) struct SynthArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Scene side in pixels.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target cloud cover (0..1).
    #[arg(long, default_value_t = 0.12)]
    cloud_cover: f64,
    /// Write N scenes (scene-01 ...) from consecutive seeds with scene-to-scene variation
    /// (reflectance gain, backscatter shift, cloud cover) and one pipeline over all of them
    /// that holds out the last third.
    #[arg(long)]
    scenes: Option<usize>,
    /// With --scenes: misregister each scene's SAR by up to this many pixels in x and y
    /// (drawn per scene, sub-pixel, bilinear in linear power).
    #[arg(long, default_value_t = 0.0)]
    misregistration: f32,
    /// How --misregistration applies: `up-to` (a shift drawn per scene up to PX in x and y),
    /// `exact` (a shift of PX pixels in a direction drawn per scene) or `varying` (PX pixels in
    /// a direction that turns smoothly across each scene).
    #[arg(long, default_value = "up-to", value_parser = ["up-to", "exact", "varying"])]
    misregistration_mode: String,
    /// Write a season instead of one date: N optical dates over March to October with
    /// per-class phenology (s2/S2_<date>.tif, s2/MASK_<date>.tif), SAR dates (s1/S1_<date>.tif)
    /// and a pipeline with [time]; with --scenes, one season per scene (other years, shifted).
    #[arg(long)]
    dates: Option<usize>,
    /// With --dates: share of the optical dates heavily clouded (clustered in weeks).
    #[arg(long, default_value_t = 0.3)]
    cloudy_dates: f64,
    /// With --dates: days between SAR dates.
    #[arg(long, default_value_t = 6)]
    sar_every_days: u32,
    /// With --dates: year of the (first) season.
    #[arg(long, default_value_t = 2021)]
    year: i32,
}

/// `geofuse synth`.
pub(super) fn cmd_synth(a: SynthArgs) -> crate::Result<()> {
    let SynthArgs {
        out,
        size,
        seed,
        cloud_cover,
        scenes,
        misregistration,
        misregistration_mode,
        dates,
        cloudy_dates,
        sar_every_days,
        year,
    } = a;
    if let Some(n) = dates {
        if !(0.0..=1.0).contains(&cloudy_dates) {
            return Err(crate::Error::config(
                "--cloudy-dates",
                format!("{cloudy_dates}: give a share between 0 and 1"),
            ));
        }
        let o = crate::synth::season::SeasonOptions {
            size,
            seed,
            dates: n,
            cloudy_dates,
            sar_every_days,
            year,
            shift_days: 0.0,
        };
        for f in crate::synth::season::generate_seasons(&out, scenes.unwrap_or(1), &o)? {
            println!("{}", f.display());
        }
        return Ok(());
    }
    let opts = crate::synth::SynthOptions {
        size,
        seed,
        cloud_cover,
        ..Default::default()
    };
    if !(0.0..=16.0).contains(&misregistration) {
        return Err(crate::Error::config(
            "--misregistration",
            format!("{misregistration} px: give a shift between 0 and 16 pixels"),
        ));
    }
    use crate::synth::Misregistration;
    let mis = match misregistration_mode.as_str() {
        "exact" => Misregistration::Exact(misregistration),
        "varying" => Misregistration::Varying(misregistration),
        _ => Misregistration::UpTo(misregistration),
    };
    let files = match scenes {
        Some(n) => crate::synth::generate_series(&out, n, &opts, mis)?,
        None => crate::synth::generate(&out, &opts)?,
    };
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct SearchArgs {
    /// The STAC API's root URL (its /search endpoint is used).
    #[arg(long)]
    api: String,
    /// Collections, comma-separated (sentinel-2-l2a,sentinel-1-rtc).
    #[arg(long, value_delimiter = ',', required = true)]
    collections: Vec<String>,
    /// West,south,east,north in degrees.
    #[arg(long, value_delimiter = ',', num_args = 1, allow_hyphen_values = true)]
    bbox: Option<Vec<f64>>,
    /// A day (2022-04-19) or an interval (2022-04-01/2022-09-30).
    #[arg(long)]
    datetime: Option<String>,
    /// Largest eo:cloud_cover in percent.
    #[arg(long)]
    max_cloud: Option<f64>,
    /// Most Items kept (all pages).
    #[arg(long, default_value_t = 500)]
    max_items: usize,
    /// Where the ItemCollection is written.
    #[arg(long)]
    out: PathBuf,
}

/// `geofuse search`: a STAC API search saved as an ItemCollection.
pub(super) fn cmd_search(a: SearchArgs) -> crate::Result<()> {
    let bbox = match a.bbox.as_deref() {
        None => None,
        Some([w, s, e, n]) if w < e && s < n => Some([*w, *s, *e, *n]),
        Some(_) => {
            return Err(crate::Error::config(
                "--bbox",
                "give west,south,east,north in degrees with west < east and south < north",
            ))
        }
    };
    let def = crate::config::catalogue::SearchDef {
        api: a.api.clone(),
        collections: a.collections,
        bbox,
        datetime: a.datetime,
        max_cloud: a.max_cloud,
        max_items: a.max_items,
    };
    let (items, fc) =
        crate::catalogue::search::search(&def).map_err(|m| crate::Error::input(&a.api, m))?;
    let text =
        serde_json::to_string_pretty(&fc).map_err(|e| crate::Error::Internal(e.to_string()))?;
    let tmp = crate::io::writer::append_ext(&a.out, ".partial");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &a.out))
        .map_err(|e| crate::Error::io(&a.out, "write the ItemCollection", e))?;
    println!("{} Items -> {}", items.len(), a.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub(super) struct SplitDatesArgs {
    /// NetCDF file(s) with a time dimension (one variable per band: B02 ..., SCL, VV, VH).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// File name prefix (default: the input's file stem).
    #[arg(long)]
    prefix: Option<String>,
    /// The mask variable, written to files of its own (`<prefix>_<MASK>_<date>.tif`).
    #[arg(long)]
    mask: Option<String>,
    /// Write physical values (scale and offset applied, Float32, fill values NaN), e.g. SAR
    /// backscatter stored as integer dB x 1e4.
    #[arg(long)]
    physical: bool,
}

/// `geofuse split-dates`: NetCDF time series to one GeoTIFF per date.
pub(super) fn cmd_split_dates(a: SplitDatesArgs) -> crate::Result<()> {
    for input in &a.inputs {
        let ts = crate::io::netcdf::read_series(input)?;
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let prefix = a.prefix.clone().unwrap_or(stem);
        let files =
            crate::io::netcdf::split_dates(&ts, &a.out, &prefix, a.mask.as_deref(), a.physical)?;
        let names: Vec<&str> = ts.variables.iter().map(|v| v.name.as_str()).collect();
        println!(
            "{}: {} steps of {} -> {} files in {}",
            input.display(),
            ts.times.len(),
            names.join(" "),
            files.len(),
            a.out.display()
        );
    }
    Ok(())
}
