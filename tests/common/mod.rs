//! Shared helpers for integration tests.
#![allow(dead_code)]

pub mod http;
pub mod stac;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gdal::Dataset;

/// Path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_geofuse"))
}

/// Runs the binary with `args`.
pub fn geofuse(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run geofuse")
}

/// `geofuse run PIPE --device cpu --out OUT -q` with network reads that give up fast (one
/// retry, 5 s): (exit code, stderr).
pub fn cli_run_short_network(pipe: &Path, out: &Path) -> (Option<i32>, String) {
    cli_run_env(
        pipe,
        out,
        &[("GDAL_HTTP_MAX_RETRY", "1"), ("GDAL_HTTP_TIMEOUT", "5")],
    )
}

/// `geofuse run PIPE --device cpu --out OUT -q` through the binary: (exit code, stderr).
pub fn cli_run(pipe: &Path, out: &Path) -> (Option<i32>, String) {
    cli_run_env(pipe, out, &[])
}

/// [`cli_run`] with extra environment variables.
pub fn cli_run_env(pipe: &Path, out: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let o = Command::new(bin())
        .args([
            "run",
            pipe.to_str().unwrap(),
            "-q",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
        .envs(env.iter().copied())
        .output()
        .expect("run geofuse");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// Writes a synthetic scene of `size` to `dir` and a fast pipeline (20 trees) with
/// `tile_size`, returning the pipeline path.
pub fn scene_with_pipeline(dir: &Path, size: usize, seed: u64, tile_size: usize) -> PathBuf {
    geofuse::synth::generate(
        dir,
        &geofuse::synth::SynthOptions {
            size,
            seed,
            strip_rows: 64,
            cloud_cover: 0.12,
            ..Default::default()
        },
    )
    .expect("synth");
    let text = geofuse::synth::pipeline_toml("out", ".", "synthetic")
        .replace("tile_size = 256", &format!("tile_size = {tile_size}"))
        .replace("trees = 100", "trees = 20")
        .replace("block_size = 64", "block_size = 32")
        .replace("samples_per_class = 3000", "samples_per_class = 600");
    // Keep the fast pipeline hand-crafted only; learned methods have their own tests.
    let text = text[..text
        .find("\n[[methods]]\nname = \"learned-kernel\"")
        .unwrap_or(text.len())]
        .to_string()
        + "\n";
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Edits a pipeline file by string replacement.
pub fn edit(pipeline: &Path, from: &str, to: &str) {
    let t = std::fs::read_to_string(pipeline).unwrap();
    assert!(t.contains(from), "pipeline lacks `{from}`");
    std::fs::write(pipeline, t.replacen(from, to, 1)).unwrap();
}

/// All pixels of a band as f64.
pub fn band_values(path: &Path, band: usize) -> Vec<f64> {
    let ds = Dataset::open(path).unwrap();
    let b = ds.rasterband(band).unwrap();
    let (w, h) = ds.raster_size();
    let buf = b.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
    buf.data().to_vec()
}

/// Number of bands of a single-date product.
pub const PRODUCT_BANDS: usize = geofuse::product::ProductBand::ALL.len();

/// The 1-based index of the product band named `name` (its description, or the description's
/// first word before a colon).
pub fn band_index(path: &Path, name: &str) -> usize {
    use gdal::Metadata;
    let ds = Dataset::open(path).unwrap();
    (1..=ds.raster_count())
        .find(|&b| {
            let d = ds.rasterband(b).unwrap().description().unwrap_or_default();
            d == name || d.starts_with(&format!("{name}:"))
        })
        .unwrap_or_else(|| panic!("{} has no band `{name}`", path.display()))
}

/// All pixels of the product band named `name`, as f64.
pub fn named_band(path: &Path, name: &str) -> Vec<f64> {
    band_values(path, band_index(path, name))
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(p.clone());
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The shared real-data folder, or None (tests then skip with a message).
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(sub);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is absent (real-data tests need ../shared/data)",
            p.display()
        );
        None
    }
}

/// Flanders chip A (`00002806639B424A`): the path of its NetCDF time series `kind`
/// (`S2_L2A_10m`, `S2_L2A_20m`, `S1_GRD-ASCENDING_20m`) under the shared data folder `data`.
pub fn flanders_a_netcdf(data: &Path, kind: &str) -> String {
    let chip = "00002806639B424A";
    data.join(chip)
        .join("raw_netcdf")
        .join(format!("{kind}_{chip}_32631_2017-08-01_2018-11-30.nc"))
        .to_string_lossy()
        .to_string()
}

/// Keys every method's metrics object must carry (docs/design.md names them).
pub const METRIC_KEYS: &[&str] = &[
    "oa",
    "kappa",
    "miou",
    "f1",
    "seconds",
    "mpix_per_s",
    "ece",
    "auroc_total",
    "auroc_epistemic",
    "masked_accuracy",
];

/// The scene's metrics.json under an output folder.
pub fn read_metrics(out: &Path, scene: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join(scene).join("metrics.json")).unwrap())
        .unwrap()
}

/// Asserts a method's metrics object has every key of [`METRIC_KEYS`] and `extra`.
pub fn assert_metric_keys(m: &serde_json::Value, method: &str, extra: &[&str]) {
    for key in METRIC_KEYS.iter().chain(extra) {
        assert!(
            !m["methods"][method][*key].is_null(),
            "{method} lacks {key}"
        );
    }
}

/// `geofuse synth --out DIR ARGS...`, which must succeed; its pipeline file.
pub fn synth(dir: &Path, args: &[&str]) -> PathBuf {
    let mut a = vec!["synth", "--out", dir.to_str().unwrap()];
    a.extend_from_slice(args);
    let o = geofuse(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join("pipeline.toml")
}

/// A synthetic pipeline's text up to its first network (the learned kernel): the trees only.
pub fn without_networks(text: &str) -> &str {
    let cut = text.find("\n[[methods]]\nname = \"learned-kernel\"");
    &text[..cut.expect("a synthetic pipeline lists the learned kernel")]
}

/// `synth --scenes n` in `dir`, trimmed to fast hand-crafted methods (forest and boosted
/// trees); returns the pipeline.
pub fn series(dir: &Path, n: usize, size: usize) -> PathBuf {
    let (size, n) = (size.to_string(), n.to_string());
    let pipe = synth(dir, &["--size", &size, "--seed", "3", "--scenes", &n]);
    let text = std::fs::read_to_string(&pipe).unwrap();
    let text = without_networks(&text)
        .replace("tile_size = 256", "tile_size = 64")
        .replace("block_size = 64", "block_size = 32")
        .replace("samples_per_class = 3000", "samples_per_class = 400")
        .replace("trees = 100", "trees = 30")
        + "\n[[methods]]\nname = \"boosted\"\nrounds = 20\n";
    std::fs::write(&pipe, text).unwrap();
    pipe
}

/// [`series`] run into `dir/out`; returns (pipeline, output folder).
pub fn run_series(dir: &Path, n: usize, size: usize) -> (PathBuf, PathBuf) {
    let pipe = series(dir, n, size);
    let out = dir.join("out");
    let o = geofuse(&[
        "run",
        pipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (pipe, out)
}

/// A PNG file's (width, height, bytes per pixel, pixels).
pub fn read_png(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut r = png::Decoder::new(f).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let step = info.line_size / info.width as usize;
    (info.width, info.height, step, buf)
}

/// `[[methods]]` for every fusion but `skip` (named by its fusion) and a learned-kernel hybrid
/// named `hybrid` with `hybrid_extra` settings, each with `settings`.
pub fn every_learned_method(settings: &str, skip: &str, hybrid_extra: &str) -> String {
    let mut methods = String::new();
    for f in geofuse::learned::Fusion::ALL {
        if f.name() != skip {
            methods += &format!("[[methods]]\nname = \"{}\"\n{settings}", f.name());
        }
    }
    methods + &format!("[[methods]]\nname = \"hybrid\"\nkind = \"learned\"\nfusion = \"learned-kernel\"\nhybrid = true\n{hybrid_extra}{settings}")
}

/// The method names [`every_learned_method`] writes (the skipped fusion included).
pub fn every_learned_name() -> Vec<&'static str> {
    geofuse::learned::Fusion::ALL
        .map(|f| f.name())
        .into_iter()
        .chain(["hybrid"])
        .collect()
}

/// A new Float32 GeoTIFF at `dst` with `bands` bands and the size, geotransform and projection
/// of `src`.
pub fn float_tiff_like(src: &Dataset, dst: &Path, bands: usize) -> Dataset {
    let (w, h) = src.raster_size();
    let drv = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut out = drv
        .create_with_band_type::<f32, _>(dst, w, h, bands)
        .unwrap();
    out.set_geo_transform(&src.geo_transform().unwrap())
        .unwrap();
    out.set_projection(&src.projection()).unwrap();
    out
}

/// `synth --dates N` of one scene of `size`, trimmed to a fast forest and boosted trees.
pub fn season(dir: &Path, size: usize, dates: usize, cloudy: f64) -> PathBuf {
    let pipe = season_all(dir, size, dates, cloudy);
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(&pipe, without_networks(&text)).unwrap();
    pipe
}

/// `synth --dates N` of one scene of `size`, every method, with small budgets.
pub fn season_all(dir: &Path, size: usize, dates: usize, cloudy: f64) -> PathBuf {
    let (size, dates, cloudy) = (size.to_string(), dates.to_string(), cloudy.to_string());
    let pipe = synth(
        dir,
        &[
            "--size",
            &size,
            "--seed",
            "5",
            "--dates",
            &dates,
            "--cloudy-dates",
            &cloudy,
            "--sar-every-days",
            "12",
        ],
    );
    let text = std::fs::read_to_string(&pipe)
        .unwrap()
        .replace("tile_size = 256", "tile_size = 64")
        .replace("block_size = 64", "block_size = 32")
        .replace("samples_per_class = 2000", "samples_per_class = 300")
        .replace("trees = 100", "trees = 30")
        .replace("name = \"boosted\"\n", "name = \"boosted\"\nrounds = 20\n")
        .replace("epochs = 30", "epochs = 2")
        .replace("patches = 256", "patches = 16")
        .replace("mc_passes = 16", "mc_passes = 4");
    std::fs::write(&pipe, text).unwrap();
    pipe
}

/// The Flanders chip A's 20 m Sentinel-2 bands with SCL and its Sentinel-1 series split into
/// dated GeoTIFFs under `dir/dated`; a pipeline of its 2018 season (land cover) at 20 m.
pub fn flanders_season(data: &Path, dir: &Path) -> PathBuf {
    let chip = "00002806639B424A";
    let nc = |s: &str| flanders_a_netcdf(data, s);
    let dated = dir.join("dated");
    let d = dated.to_str().unwrap();
    for args in [
        vec![
            nc("S2_L2A_20m"),
            "--out".into(),
            d.into(),
            "--prefix".into(),
            "S2".into(),
            "--mask".into(),
            "SCL".into(),
        ],
        vec![
            nc("S1_GRD-ASCENDING_20m"),
            "--out".into(),
            d.into(),
            "--prefix".into(),
            "S1".into(),
            "--physical".into(),
        ],
    ] {
        let a: Vec<&str> = std::iter::once("split-dates")
            .chain(args.iter().map(String::as_str))
            .collect();
        let o = geofuse(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let labels = data.join(chip).join(format!("{chip}_label_LC.tif"));
    let pipe = dir.join("season.toml");
    let classes: String = [
        (11, "annual cropland"),
        (12, "perennial cropland"),
        (13, "grassland"),
        (60, "built-up"),
        (99, "other"),
    ]
    .iter()
    .map(|(id, n)| format!("[[classes]]\nid = {id}\nname = \"{n}\"\ncolor = \"#808080\"\n\n"))
    .collect();
    std::fs::write(
        &pipe,
        format!(
            r#"output = "out"
seed = 42

[time]
start = "03-01"
end = "10-31"
step_days = 30

{classes}[[scenes]]
name = "A_2018"
year = 2018
optical = {{ path = "dated/S2_*.tif", bands = ["B05", "B06", "B07", "B11", "B12", "B8A"], scale = 0.0001 }}
mask = {{ path = "dated/S2_SCL_{{date}}.tif", invalid = [0, 1, 3, 8, 9, 10] }}
sar = {{ path = "dated/S1_*.tif", polarisations = ["VH", "VV"], unit = "db" }}
labels = "{}"

[coregistration]
allow_warp = true

[tiling]
tile_size = 16

[features]
indices = ["NDRE", "NDMI", "NBR"]
sar = ["vv_db", "vh_db", "vh_vv_ratio_db"]

[split]
block_size = 8
test_fraction = 0.3
samples_per_class = 500

[[methods]]
name = "handcrafted"
trees = 50
"#,
            labels.display()
        ),
    )
    .unwrap();
    pipe
}
