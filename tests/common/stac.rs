//! Catalogue fixtures: a stacked scene split into one Cloud-Optimized GeoTIFF per band (10 m
//! bands at 10 m, 20 m bands and the mask at 20 m, as Sentinel-2 L2A arrives), Sentinel-1
//! VV/VH as separate assets (on the optical grid in dB, or reprojected onto another UTM zone
//! in linear power), and the STAC Items that describe them.

use std::path::{Path, PathBuf};
use std::process::Command;

use gdal::raster::{Buffer, GdalType};
use gdal::{Dataset, DriverManager};
use serde_json::{json, Value};

/// Sentinel-2 band names, their 20 m status and Earth Search's common-name asset keys.
pub const S2_BANDS: [(&str, bool, &str); 10] = [
    ("B02", false, "blue"),
    ("B03", false, "green"),
    ("B04", false, "red"),
    ("B05", true, "rededge1"),
    ("B06", true, "rededge2"),
    ("B07", true, "rededge3"),
    ("B08", false, "nir"),
    ("B8A", true, "nir08"),
    ("B11", true, "swir16"),
    ("B12", true, "swir22"),
];

/// How one optical date becomes assets.
pub struct OpticalSplit<'a> {
    /// The stacked optical raster (10 bands in `S2_BANDS` order, DN).
    pub stack: &'a Path,
    /// Its mask raster (SCL or a cloud mask).
    pub mask: Option<&'a Path>,
    /// Asset keys by common name (Earth Search) instead of band name (Planetary Computer).
    pub common_keys: bool,
    /// Added to every valid DN, with `raster:bands` offset -shift * 1e-4 and processing
    /// baseline 04.00 when non-zero.
    pub dn_shift: i32,
    /// Halve the 20 m bands (the stack holds them nearest-upsampled to 10 m).
    pub native_20m: bool,
}

/// Writes a single-band COG of `data` (w x h) with `gt` and `wkt`.
pub fn write_cog<T: GdalType + Copy>(
    dst: &Path,
    (w, h): (usize, usize),
    gt: [f64; 6],
    wkt: &str,
    data: Vec<T>,
    nodata: Option<f64>,
) {
    let mem = DriverManager::get_driver_by_name("MEM").unwrap();
    let mut ds = mem.create_with_band_type::<T, _>("", w, h, 1).unwrap();
    ds.set_geo_transform(&gt).unwrap();
    ds.set_projection(wkt).unwrap();
    {
        let mut b = ds.rasterband(1).unwrap();
        if let Some(n) = nodata {
            b.set_no_data_value(Some(n)).unwrap();
        }
        let mut buf = Buffer::new((w, h), data);
        b.write((0, 0), (w, h), &mut buf).unwrap();
    }
    let cog = DriverManager::get_driver_by_name("COG").unwrap();
    let opts =
        gdal::raster::RasterCreationOptions::from_iter(["COMPRESS=DEFLATE", "BLOCKSIZE=256"]);
    ds.create_copy(&cog, dst, &opts).unwrap();
}

/// A band's values as f64, its size, geotransform, projection and nodata.
pub type BandRead = (Vec<f64>, (usize, usize), [f64; 6], String, Option<f64>);

/// Band `b` of `path` as f64, with its size, geotransform, projection and nodata.
pub fn read_band(path: &Path, b: usize) -> BandRead {
    let ds = Dataset::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = ds.raster_size();
    let band = ds.rasterband(b).unwrap();
    let buf = band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
    (
        buf.data().to_vec(),
        (w, h),
        ds.geo_transform().unwrap(),
        ds.projection(),
        band.no_data_value(),
    )
}

/// Every other pixel of every other row (a nearest-upsampled x2 band back at its own size);
/// panics when a 2 x 2 block is not constant (the band was not upsampled that way).
pub fn halve(v: &[f64], (w, h): (usize, usize)) -> Vec<f64> {
    let mut out = Vec::with_capacity(w * h / 4);
    for r in (0..h).step_by(2) {
        for c in (0..w).step_by(2) {
            let x = v[r * w + c];
            for (dr, dc) in [(0, 1), (1, 0), (1, 1)] {
                let y = v[(r + dr) * w + c + dc];
                assert!(
                    x == y || (x.is_nan() && y.is_nan()),
                    "2x2 block at ({r},{c}) is not constant"
                );
            }
            out.push(x);
        }
    }
    out
}

/// Splits one optical date into per-band COGs under `dir`; the Item's assets (JSON object).
pub fn split_optical(
    s: &OpticalSplit,
    dir: &Path,
    href_prefix: &str,
) -> serde_json::Map<String, Value> {
    std::fs::create_dir_all(dir).unwrap();
    let mut assets = serde_json::Map::new();
    for (i, (name, twenty, common)) in S2_BANDS.iter().enumerate() {
        let (v, (w, h), gt, wkt, nd) = read_band(s.stack, i + 1);
        let v: Vec<f64> = v
            .iter()
            .map(|&x| {
                if Some(x) == nd || x == 0.0 {
                    0.0
                } else {
                    x + f64::from(s.dn_shift)
                }
            })
            .collect();
        let (v, size, gt) = if *twenty && s.native_20m {
            (
                halve(&v, (w, h)),
                (w / 2, h / 2),
                [gt[0], gt[1] * 2.0, 0.0, gt[3], 0.0, gt[5] * 2.0],
            )
        } else {
            (v, (w, h), gt)
        };
        let file = format!("{name}.tif");
        write_cog::<u16>(
            &dir.join(&file),
            size,
            gt,
            &wkt,
            v.iter().map(|&x| x as u16).collect(),
            Some(0.0),
        );
        let key = if s.common_keys {
            common.to_string()
        } else {
            name.to_string()
        };
        let mut a = json!({"href": format!("{href_prefix}/{file}"), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"], "eo:bands": [{"name": name, "common_name": common}]});
        if s.dn_shift != 0 {
            a["raster:bands"] =
                json!([{"nodata": 0, "scale": 0.0001, "offset": -f64::from(s.dn_shift) * 1e-4}]);
        }
        assets.insert(key, a);
    }
    if let Some(m) = s.mask {
        let (v, (w, h), gt, wkt, mask_nodata) = read_band(m, 1);
        let (v, size, gt) = if s.native_20m {
            (
                halve(&v, (w, h)),
                (w / 2, h / 2),
                [gt[0], gt[1] * 2.0, 0.0, gt[3], 0.0, gt[5] * 2.0],
            )
        } else {
            (v, (w, h), gt)
        };
        write_cog::<u8>(
            &dir.join("SCL.tif"),
            size,
            gt,
            &wkt,
            v.iter().map(|&x| x as u8).collect(),
            mask_nodata,
        );
        let classes: Vec<Value> = (0..12)
            .map(|c| json!({"value": c, "name": format!("class {c}")}))
            .collect();
        let key = if s.common_keys { "scl" } else { "SCL" };
        assets.insert(key.into(), json!({"href": format!("{href_prefix}/SCL.tif"), "type": "image/tiff; application=geotiff",
            "roles": ["data"], "classification:classes": classes}));
    }
    assets
}

/// Splits a SAR stack (VV, VH in dB) into `vv.tif` and `vh.tif` under `dir`: as they are, or
/// (`epsg`) in linear power warped bilinearly onto that CRS at 20 m. The assets.
pub fn split_sar(
    stack: &Path,
    dir: &Path,
    href_prefix: &str,
    epsg: Option<u32>,
) -> serde_json::Map<String, Value> {
    std::fs::create_dir_all(dir).unwrap();
    let mut assets = serde_json::Map::new();
    for (i, key) in ["vv", "vh"].iter().enumerate() {
        let (v, size, gt, wkt, nd) = read_band(stack, i + 1);
        let file = format!("{key}.tif");
        let dst = dir.join(&file);
        match epsg {
            None => write_cog::<f32>(
                &dst,
                size,
                gt,
                &wkt,
                v.iter().map(|&x| x as f32).collect(),
                nd,
            ),
            Some(e) => {
                let lin: Vec<f32> = v
                    .iter()
                    .map(|&x| {
                        if Some(x) == nd || !x.is_finite() {
                            f32::NAN
                        } else {
                            10f32.powf(x as f32 / 10.0)
                        }
                    })
                    .collect();
                let tmp = dir.join(format!("{key}.linear.tif"));
                let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
                let mut ds = drv
                    .create_with_band_type::<f32, _>(&tmp, size.0, size.1, 1)
                    .unwrap();
                ds.set_geo_transform(&gt).unwrap();
                ds.set_projection(&wkt).unwrap();
                {
                    let mut b = ds.rasterband(1).unwrap();
                    b.set_no_data_value(Some(f64::NAN)).unwrap();
                    b.write((0, 0), size, &mut Buffer::new(size, lin)).unwrap();
                }
                drop(ds);
                let st = Command::new("gdalwarp")
                    .args([
                        "-q",
                        "-t_srs",
                        &format!("EPSG:{e}"),
                        "-tr",
                        "20",
                        "20",
                        "-r",
                        "bilinear",
                        "-of",
                        "COG",
                        "-overwrite",
                    ])
                    .arg(&tmp)
                    .arg(&dst)
                    .status()
                    .expect("gdalwarp (Debian gdal-bin; scripts/setup.sh installs it)");
                assert!(st.success());
                std::fs::remove_file(&tmp).unwrap();
            }
        }
        let mut a = json!({"href": format!("{href_prefix}/{file}"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]});
        if epsg.is_none() {
            a["raster:bands"] = json!([{"unit": "dB"}]);
        }
        assets.insert(key.to_string(), a);
    }
    assets
}

/// A STAC Item.
pub fn item(
    id: &str,
    collection: &str,
    datetime: &str,
    props: Value,
    assets: serde_json::Map<String, Value>,
) -> Value {
    let mut p = json!({"datetime": datetime});
    for (k, v) in props.as_object().unwrap() {
        p[k] = v.clone();
    }
    json!({"type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
           "geometry": null, "properties": p, "assets": assets, "links": []})
}

/// Writes an ItemCollection.
pub fn write_items(path: &Path, items: Vec<Value>) {
    let fc = json!({"type": "FeatureCollection", "features": items});
    std::fs::write(path, serde_json::to_string_pretty(&fc).unwrap()).unwrap();
}

/// The files of the real Flanders chip `id`: `(s2 date, s1 date)` pairs.
pub fn flanders_dates(chip_dir: &Path, id: &str) -> Vec<(String, String)> {
    let mut s2: Vec<String> = Vec::new();
    let mut s1: Vec<String> = Vec::new();
    for e in std::fs::read_dir(chip_dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if !n.ends_with(".tif") {
            continue;
        }
        if let Some(d) = n.strip_prefix(&format!("{id}_S2L2A_")) {
            s2.push(d.trim_end_matches(".tif").into());
        }
        if let Some(d) = n.strip_prefix(&format!("{id}_S1GRDasc_")) {
            s1.push(d.trim_end_matches(".tif").into());
        }
    }
    s2.sort();
    s1.sort();
    s2.into_iter().zip(s1).collect()
}

/// Where the `rustac` command (STAC API server, stac-server's in-memory backend) is, if
/// installed (scripts/setup.sh puts it in a venv under ~/.cache/geofuse).
pub fn rustac() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        std::env::var_os("GEOFUSE_RUSTAC").map(PathBuf::from),
        Some(home.join(".cache/geofuse/stac-venv/bin/rustac")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIP: rustac (the STAC API server these tests start) is not installed; run scripts/setup.sh");
    }
    found
}

/// Two synthetic scenes as Items under `dir/served` (hrefs relative to the ItemCollection),
/// (absolute paths with `absolute_hrefs`), and a pipeline over them (`T0_2022-05-01` trains,
/// `T1_2022-05-11` is only mapped). The Items, to break.
pub fn synthetic_catalogue(dir: &Path, absolute_hrefs: bool) -> (PathBuf, Vec<Value>) {
    let served = dir.join("served");
    let mut items = Vec::new();
    for (i, day) in ["2022-05-01", "2022-05-11"].iter().enumerate() {
        let sdir = dir.join(format!("synth{i}"));
        geofuse::synth::generate(
            &sdir,
            &geofuse::synth::SynthOptions {
                size: 96,
                seed: 3 + i as u64,
                strip_rows: 32,
                cloud_cover: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        let id = format!("S2_{i}");
        let split = OpticalSplit {
            stack: &sdir.join("optical.tif"),
            mask: Some(&sdir.join("cloud_mask.tif")),
            common_keys: i == 0,
            dn_shift: 0,
            native_20m: false,
        };
        let prefix = |id: &str| {
            if absolute_hrefs {
                served.join(id).to_string_lossy().to_string()
            } else {
                id.to_string()
            }
        };
        let assets = split_optical(&split, &served.join(&id), &prefix(&id));
        items.push(item(
            &id,
            "sentinel-2-l2a",
            &format!("{day}T10:00:00Z"),
            json!({"s2:mgrs_tile": format!("T{i}")}),
            assets,
        ));
        let sid = format!("S1_{i}");
        let sassets = split_sar(
            &sdir.join("sar.tif"),
            &served.join(&sid),
            &prefix(&sid),
            None,
        );
        items.push(item(
            &sid,
            "sentinel-1-rtc",
            &format!("{day}T17:00:00Z"),
            json!({}),
            sassets,
        ));
        std::fs::copy(
            sdir.join("labels.tif"),
            dir.join(format!("labels_T{i}.tif")),
        )
        .unwrap();
    }
    let base = geofuse::synth::pipeline_toml("out", ".", "synthetic");
    let (a, b) = (
        base.find("[[scenes]]").unwrap(),
        base.find("[tiling]").unwrap(),
    );
    let cat = "[[catalogue]]\nitems = \"served/items.json\"\nbands = [\"B02\", \"B03\", \"B04\", \"B05\", \"B06\", \"B07\", \"B08\", \"B8A\", \"B11\", \"B12\"]\nname = \"{tile}_{date}\"\nlabels = \"labels_{tile}.tif\"\nmask = { asset = \"SCL\", invalid = [1, 2] }\nsar = { max_days = 3 }\n\n[training]\nscenes = [\"T0_2022-05-01\"]\n\n";
    let text = format!("{}{cat}{}", &base[..a], &base[b..])
        .replace("trees = 100", "trees = 10")
        .replace("samples_per_class = 3000", "samples_per_class = 200")
        .replace("block_size = 64", "block_size = 32");
    let text = text[..text
        .find("\n[[methods]]\nname = \"learned-kernel\"")
        .unwrap_or(text.len())]
        .to_string()
        + "\n";
    let pipe = dir.join("pipeline.toml");
    std::fs::write(&pipe, text).unwrap();
    (pipe, items)
}
