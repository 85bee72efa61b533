//! Season scenes (`[time]`): dated rasters regularised onto the temporal grid (against a
//! hand computation from the files), tiled = untiled, temporal features beating a single
//! date on synthetic seasons, the STAC Item's season, and bad input refused with exit 2.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gdal::{Dataset, Metadata};
use geofuse::config::Pipeline;
use geofuse::scene::plan::scene_features;
use geofuse::scene::prepare_scene;

/// Band `b` of a raster as f64.
fn band(path: &Path, b: usize) -> Vec<f64> {
    band_values(path, b)
}

fn date_of(p: &Path) -> String {
    geofuse::config::scene_set::find_date(&p.file_name().unwrap().to_string_lossy()).unwrap()
}

/// NDVI on the grid and the valid-observation count of pixel `i`, computed from the files:
/// the step mean of each band's DN over clear dates, gaps interpolated between step centres,
/// the ends held.
fn hand_ndvi(dir: &Path, steps: &[(i64, i64)], i: usize) -> (Vec<f64>, usize) {
    let mut files: Vec<PathBuf> = glob::glob(dir.join("s2/S2_*.tif").to_str().unwrap())
        .unwrap()
        .flatten()
        .collect();
    files.sort();
    let (mut sum, mut cnt) = (vec![[0.0f64; 2]; steps.len()], vec![0usize; steps.len()]);
    for f in &files {
        let d = date_of(f);
        let day = geofuse::config::scene_set::day_number(&d).unwrap();
        let mask = band(&dir.join(format!("s2/MASK_{d}.tif")), 1)[i];
        let (red, nir) = (band(f, 3)[i], band(f, 7)[i]);
        let Some(k) = steps.iter().position(|&(a, b)| (a..=b).contains(&day)) else {
            continue;
        };
        if mask == 0.0 && red != 0.0 && nir != 0.0 {
            sum[k][0] += red;
            sum[k][1] += nir;
            cnt[k] += 1;
        }
    }
    let known: Vec<usize> = (0..steps.len()).filter(|&k| cnt[k] > 0).collect();
    let centre = |k: usize| (steps[k].0 + steps[k].1) as f64 / 2.0;
    let at = |k: usize, b: usize| sum[k][b] / cnt[k] as f64 * 1e-4;
    let value = |k: usize, b: usize| {
        let after = known.iter().position(|&j| j >= k);
        match after {
            Some(j) if known[j] == k => at(k, b),
            Some(0) => at(known[0], b),
            None => at(*known.last().unwrap(), b),
            Some(j) => {
                let (a, c) = (known[j - 1], known[j]);
                let f = (centre(k) - centre(a)) / (centre(c) - centre(a));
                at(a, b) + f * (at(c, b) - at(a, b))
            }
        }
    };
    let ndvi = (0..steps.len())
        .map(|k| {
            let (r, n) = (value(k, 0), value(k, 1));
            (n - r) / (n + r)
        })
        .collect();
    (ndvi, cnt.iter().sum())
}

#[test]
fn regularised_features_equal_a_hand_computation_tiled_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = season(dir.path(), 48, 10, 0.5);
    let p = Pipeline::load(&pipe).unwrap();
    let s = &p.scenes[0];
    let src = prepare_scene(&p, s, &dir.path().join("work")).unwrap();
    let ss = src.season.as_ref().unwrap();
    assert_eq!((ss.optical.len(), ss.steps.len()), (10, 9));
    let (names, whole) = scene_features(&p, &src, 1024).unwrap();
    let (_, tiled) = scene_features(&p, &src, 16).unwrap();
    assert_eq!(
        whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        tiled.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "tiled = untiled, bit for bit"
    );
    let f = |n: &str| names.iter().position(|x| x == n).unwrap();
    let mut checked_gap = false;
    for i in [0, 17, 700, 1201, 2303] {
        let (r, c) = (i / 48, i % 48);
        let (want, n_obs) = hand_ndvi(dir.path(), &ss.steps, i);
        for (k, w) in want.iter().enumerate() {
            let got = whole[[f(&format!("NDVI_t{k:02}")), r, c]];
            assert!(
                (f64::from(got) - w).abs() < 1e-4,
                "pixel {i} step {k}: {got} vs {w}"
            );
        }
        assert_eq!(whole[[f("obs_optical"), r, c]], n_obs as f32, "pixel {i}");
        checked_gap |= n_obs < 10;
        let v: Vec<f32> = (0..9)
            .map(|k| whole[[f(&format!("NDVI_t{k:02}")), r, c]])
            .collect();
        let max = v.iter().copied().fold(f32::MIN, f32::max);
        assert!(
            (whole[[f("NDVI_amp"), r, c]] - (max - v.iter().copied().fold(f32::MAX, f32::min)))
                .abs()
                < 1e-6
        );
    }
    assert!(
        checked_gap,
        "half the dates are cloudy: some pixel lost a date"
    );
    // 20 SAR dates every 12 days over 245 days.
    assert_eq!(whole[[f("obs_sar"), 0, 0]], 21.0);
}

fn accuracy(out: &Path, scene: &str, method: &str) -> f64 {
    let m = read_metrics(out, scene);
    m["methods"][method]["oa"]
        .as_f64()
        .unwrap_or_else(|| panic!("no accuracy for {method}: {m}"))
}

#[test]
fn a_season_maps_end_to_end_and_beats_its_clearest_single_date() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = season(dir.path(), 96, 12, 0.3);
    let out = dir.path().join("out");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    let item: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("season/handcrafted.stac.json")).unwrap(),
    )
    .unwrap();
    let props = &item["properties"];
    assert_eq!(props["start_datetime"], "2021-03-01T00:00:00Z");
    assert_eq!(props["end_datetime"], "2021-10-31T23:59:59Z");
    assert_eq!(props["geofuse:optical_dates"].as_array().unwrap().len(), 12);
    assert_eq!(props["geofuse:step_days"], 30);
    // The product's two season bands: valid optical and SAR observations per pixel.
    let prod = out.join("season/handcrafted.tif");
    let ds = Dataset::open(&prod).unwrap();
    assert_eq!(ds.raster_count(), 8);
    let desc = ds.rasterband(7).unwrap().description().unwrap();
    assert!(desc.starts_with("obs_optical"), "{desc}");
    let obs = band_values(&prod, 7);
    assert!(obs.iter().all(|&v| v <= 12.0) && obs.iter().any(|&v| v < 12.0));
    assert!(band_values(&prod, 8).iter().all(|&v| v == 21.0));
    let season_oa = accuracy(&out, "season", "handcrafted");
    // The same forest on one date: the clear summer date, with the SAR date nearest it.
    let opt: Vec<String> = props["geofuse:optical_dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let summer = opt.iter().find(|d| d.as_str() >= "2021-07-01").unwrap();
    let single = dir.path().join("single.toml");
    let text = std::fs::read_to_string(&pipe).unwrap();
    let cut = text.find("[time]").unwrap();
    let end = text[cut..].find("[[classes]]").unwrap() + cut;
    let text = format!("{}{}", &text[..cut], &text[end..])
        .replace("year = 2021\n", "")
        .replace("s2/S2_*.tif", &format!("s2/S2_{summer}.tif"))
        .replace("s2/MASK_{date}.tif", &format!("s2/MASK_{summer}.tif"))
        .replace(
            "s1/S1_*.tif",
            &format!("s1/S1_{}.tif", nearest_sar(dir.path(), summer)),
        )
        .replace(
            "name = \"handcrafted\"",
            "name = \"handcrafted-1date\"\nkind = \"handcrafted\"",
        );
    std::fs::write(&single, text).unwrap();
    let out1 = dir.path().join("out1");
    let (code, err) = cli_run(&single, &out1);
    assert_eq!(code, Some(0), "{err}");
    let single_oa = accuracy(&out1, "season", "handcrafted-1date");
    println!("season OA {season_oa:.3}, single date {summer} OA {single_oa:.3}");
    assert!(
        season_oa > single_oa + 0.05,
        "season {season_oa:.3} vs single date {single_oa:.3}"
    );
    // The two runs compared on the same pixels: a block test between them.
    let rep = dir.path().join("compare");
    let o = geofuse(&[
        "compare",
        out.to_str().unwrap(),
        out1.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(rep.join("compare.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| held-out blocks | handcrafted | handcrafted-1date |"))
        .unwrap_or_else(|| panic!("no pair of the two runs in:\n{md}"));
    // Three held-out blocks are too few for significance; the season is ahead on them.
    let diff: f64 = row.split('|').nth(8).unwrap().trim().parse().unwrap();
    assert!(diff > 0.05, "{row}");
}

fn nearest_sar(dir: &Path, date: &str) -> String {
    let d0 = geofuse::config::scene_set::day_number(date).unwrap();
    let mut best = (i64::MAX, String::new());
    for f in glob::glob(dir.join("s1/S1_*.tif").to_str().unwrap())
        .unwrap()
        .flatten()
    {
        let d = date_of(&f);
        let gap = (geofuse::config::scene_set::day_number(&d).unwrap() - d0).abs();
        if gap < best.0 {
            best = (gap, d);
        }
    }
    best.1
}

/// Runs `pipe` and expects exit 2 with every one of `needles` in the message, and no product.
fn refused(pipe: &Path, out: &Path, needles: &[&str]) {
    let (code, err) = cli_run(pipe, out);
    assert_eq!(code, Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    let tifs = files_under(out)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "tif"))
        .count();
    assert_eq!(tifs, 0, "no product after a refusal");
}

#[test]
fn bad_seasons_are_refused_with_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = season(dir.path(), 32, 4, 0.0);
    let s2 = dir.path().join("s2");
    let mut dates: Vec<PathBuf> = glob::glob(s2.join("S2_*.tif").to_str().unwrap())
        .unwrap()
        .flatten()
        .collect();
    dates.sort();
    let out = dir.path().join("out");
    let original = std::fs::read_to_string(&pipe).unwrap();
    let with = |from: &str, to: &str| {
        std::fs::write(&pipe, original.replace(from, to)).unwrap();
    };
    // Duplicated date: a second file of the same day.
    let d0 = date_of(&dates[0]);
    let dup = s2.join(format!("S2_{d0}_copy.tif"));
    std::fs::copy(&dates[0], &dup).unwrap();
    refused(&pipe, &out, &["both dated", &d0, "one raster per date"]);
    std::fs::remove_file(&dup).unwrap();
    // An explicit list out of date order, and one with a date outside the season.
    let list = |v: &[&PathBuf]| {
        v.iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let glob_key = "path = \"./s2/S2_*.tif\"";
    assert!(original.contains(glob_key), "{original}");
    with(
        glob_key,
        &format!("files = [{}]", list(&[&dates[1], &dates[0]])),
    );
    refused(&pipe, &out, &["not in date order", "sort the list by date"]);
    let late = s2.join("S2_2021-11-20.tif");
    std::fs::copy(&dates[0], &late).unwrap();
    with(
        glob_key,
        &format!("files = [{}]", list(&[&dates[0], &late])),
    );
    refused(
        &pipe,
        &out,
        &["2021-11-20", "outside the season", "widen `[time]`"],
    );
    // A glob leaves that date out and the season runs.
    with("trees = 30", "trees = 5");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    std::fs::remove_file(&late).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    // A date on another grid: refused without allow_warp, naming the file.
    let moved = dates[2].clone();
    let ds = Dataset::open(&moved).unwrap();
    let mut gt = ds.geo_transform().unwrap();
    drop(ds);
    gt[0] += 15.0;
    let tmp = dir.path().join("moved.tif");
    std::fs::copy(&moved, &tmp).unwrap();
    Dataset::open_ex(
        &tmp,
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
            ..Default::default()
        },
    )
    .unwrap()
    .set_geo_transform(&gt)
    .unwrap();
    std::fs::rename(&tmp, &moved).unwrap();
    std::fs::write(&pipe, &original).unwrap();
    refused(&pipe, &out, &[moved.to_str().unwrap(), "allow_warp"]);
    // Month-days without a year.
    with("year = 2021\n", "");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("set `year`"), "{err}");
}

#[test]
fn temporal_attention_needs_a_season_and_a_width_its_heads_divide() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = scene_with_pipeline(dir.path(), 48, 3, 64);
    let ltae = "\n[[methods]]\nname = \"ltae\"\nfusion = \"learned-kernel\"\ntemporal = \"ltae\"\nepochs = 1\n";
    let text = std::fs::read_to_string(&pipe).unwrap();
    std::fs::write(&pipe, format!("{text}{ltae}")).unwrap();
    let out = dir.path().join("out");
    refused(&pipe, &out, &["ltae", "needs a season", "add [time]"]);
    std::fs::write(&pipe, format!("{text}{ltae}width = 10\n")).unwrap();
    refused(&pipe, &out, &["ltae", "multiple of 4"]);
}

#[test]
fn flanders_season_from_the_20m_bands_alone() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipe = flanders_season(&data, dir.path());
    let p = Pipeline::load(&pipe).unwrap();
    let src = prepare_scene(&p, &p.scenes[0], &dir.path().join("work")).unwrap();
    let ss = src.season.as_ref().unwrap();
    let (n_opt, n_sar) = (ss.optical.len(), ss.sar.len());
    println!(
        "Flanders chip A 2018: {n_opt} optical and {n_sar} SAR dates in the season, {} outside",
        ss.outside
    );
    assert!(n_opt > 30 && n_sar > 30, "{n_opt} {n_sar}");
    assert!(ss
        .optical
        .iter()
        .all(|d| d.date.as_str() >= "2018-03-01" && d.date.as_str() <= "2018-10-31"));
    // The observation count of each pixel = the dates its SCL calls clear.
    let (names, stack) = scene_features(&p, &src, 16).unwrap();
    let k = names.iter().position(|n| n == "obs_optical").unwrap();
    let invalid = [0.0, 1.0, 3.0, 8.0, 9.0, 10.0];
    let mut clear = vec![0f32; 32 * 32];
    for d in &ss.optical {
        let scl = band(&dir.path().join(format!("dated/S2_SCL_{}.tif", d.date)), 1);
        for (c, v) in clear.iter_mut().zip(scl) {
            *c += f32::from(!invalid.contains(&v));
        }
    }
    let got: Vec<f32> = stack
        .index_axis(ndarray::Axis(0), k)
        .iter()
        .copied()
        .collect();
    assert_eq!(got, clear);
    let (lo, hi) = (
        clear.iter().copied().fold(f32::MAX, f32::min),
        clear.iter().copied().fold(0.0, f32::max),
    );
    println!("clear optical dates per pixel: {lo} to {hi} of {n_opt}");
    assert!(hi < n_opt as f32, "some dates are cloudy");
    let out = dir.path().join("out");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    let oa = accuracy(&out, "A_2018", "handcrafted");
    println!("Flanders chip A season forest (20 m bands, held-out blocks): OA {oa:.3}");
    // Majority-class guessing gives about 0.43 on this chip.
    assert!(oa > 0.5, "OA {oa}");
}

#[test]
fn season_networks_take_steps_as_channels_or_through_temporal_attention() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = season_all(dir.path(), 64, 6, 0.3);
    let text = std::fs::read_to_string(&pipe).unwrap();
    let start = text.find("[[methods]]\nname = \"handcrafted\"").unwrap();
    let end = text.find("[[methods]]\nname = \"learned-kernel\"").unwrap();
    std::fs::write(&pipe, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let out = dir.path().join("out");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    let spec = |name: &str| -> serde_json::Value {
        let path = out.join(format!("models/{name}.json"));
        let model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        model["config"]["spec"].clone()
    };
    // Nine monthly steps of ten optical bands and of VV, VH.
    let stack = spec("learned-kernel");
    assert_eq!(
        (stack["optical"].as_u64(), stack["sar"].as_u64()),
        (Some(90), Some(18))
    );
    let prod = out.join("season/learned-kernel.tif");
    assert_eq!(Dataset::open(&prod).unwrap().raster_count(), 8);
    let obs = band_values(&prod, 7);
    assert!(obs.iter().all(|&v| v <= 6.0), "{:?}", &obs[..8]);
    // The temporal attention encoders: the same channels plus one observed flag per step.
    let t = &spec("ltae-kernel")["temporal"];
    assert_eq!(
        (t["steps"].as_u64(), t["dim"].as_u64()),
        (Some(9), Some(16))
    );
    let prod = out.join("season/ltae-kernel.tif");
    assert_eq!(Dataset::open(&prod).unwrap().raster_count(), 8);
    let class = band_values(&prod, 1);
    assert!(class.iter().all(|&v| v != 255.0), "every pixel has a class");
}

#[test]
fn date_dropout_stays_in_the_monte_carlo_passes_unless_mc_dates_is_off() {
    // A temporal attention network trained with date dropout (its temperature fitted on
    // passes that drop dates), then the same weights mapped again with every date in each pass.
    let dir = tempfile::tempdir().unwrap();
    let pipe = season_all(dir.path(), 64, 6, 0.5);
    let text = std::fs::read_to_string(&pipe).unwrap();
    let ltae = text.find("[[methods]]\nname = \"ltae-kernel\"").unwrap();
    let start = text.find("[[methods]]\nname = \"handcrafted\"").unwrap();
    let table = text[ltae..]
        .replacen(
            "temporal = \"ltae\"",
            "temporal = \"ltae\"\ndate_dropout = 0.5",
            1,
        )
        .replacen("epochs = 2", "epochs = 10", 1);
    std::fs::write(&pipe, format!("{}{table}", &text[..start])).unwrap();
    let out = dir.path().join("out");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    let model = out.join("models/ltae-kernel");
    let reload = table.replacen(
        "name = \"ltae-kernel\"",
        &format!(
            "name = \"ltae-kernel\"\nmodel = \"{}\"\nmc_dates = false",
            model.display()
        ),
        1,
    );
    let pipe2 = dir.path().join("every-date.toml");
    std::fs::write(&pipe2, format!("{}{reload}", &text[..start])).unwrap();
    let out2 = dir.path().join("out2");
    let (code, err) = cli_run(&pipe2, &out2);
    assert_eq!(code, Some(0), "{err}");
    let (a, b) = (
        out.join("season/ltae-kernel.tif"),
        out2.join("season/ltae-kernel.tif"),
    );
    let (ea, eb) = (named_band(&a, "epistemic"), named_band(&b, "epistemic"));
    let differ = ea.iter().zip(&eb).filter(|(x, y)| x != y).count();
    assert!(
        differ > ea.len() / 10,
        "the passes that drop dates change the epistemic band ({differ} pixels)"
    );
    assert_eq!(
        band_values(&a, 7),
        band_values(&b, 7),
        "the same observations"
    );
}

#[test]
fn a_pixel_without_any_clear_date_is_predicted_from_sar_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = season(dir.path(), 32, 4, 0.0);
    // Every date clouded over rows 8..12, columns 8..12.
    for f in glob::glob(dir.path().join("s2/MASK_*.tif").to_str().unwrap())
        .unwrap()
        .flatten()
    {
        let mut ds = Dataset::open_ex(
            &f,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        let mut buf = gdal::raster::Buffer::new((4, 4), vec![1u8; 16]);
        ds.rasterband(1)
            .unwrap()
            .write((8, 8), (4, 4), &mut buf)
            .unwrap();
        ds.flush_cache().unwrap();
    }
    let out = dir.path().join("out");
    let (code, err) = cli_run(&pipe, &out);
    assert_eq!(code, Some(0), "{err}");
    let prod = out.join("season/handcrafted.tif");
    let (class, modal, obs) = (
        band_values(&prod, 1),
        named_band(&prod, "modalities"),
        band_values(&prod, 7),
    );
    for r in 0..32 {
        for c in 0..32 {
            let i = r * 32 + c;
            let cloudy = (8..12).contains(&r) && (8..12).contains(&c);
            assert_eq!(
                obs[i] == 0.0,
                cloudy,
                "pixel ({r}, {c}): {} observations",
                obs[i]
            );
            assert_eq!(
                modal[i] == 2.0,
                cloudy,
                "pixel ({r}, {c}): modalities {}",
                modal[i]
            );
            assert_ne!(class[i], 255.0, "pixel ({r}, {c}) has a class");
        }
    }
}

#[test]
fn a_window_cut_from_the_whole_season_equals_the_window_read_alone() {
    // Season networks train on patches cut from the scene's whole raw bands, read once.
    use geofuse::learned::scene_input::raw_window;
    use geofuse::raster::Window;
    use geofuse::scene::plan::scene_plan;
    use geofuse::scene::SceneReader;
    let dir = tempfile::tempdir().unwrap();
    let pipe = season(dir.path(), 40, 6, 0.5);
    let p = Pipeline::load(&pipe).unwrap();
    let src = prepare_scene(&p, &p.scenes[0], &dir.path().join("work")).unwrap();
    let reader = SceneReader::open(&src).unwrap();
    let plan = scene_plan(&p, &src).unwrap();
    let whole = Window {
        row: 0,
        col: 0,
        width: 40,
        height: 40,
    };
    let mut gaps_seen = 0;
    for (hybrid, gaps) in [(None, false), (Some(&plan), false), (None, true)] {
        let all = raw_window(&reader, &src, whole, &src.sar_pols, (hybrid, gaps)).unwrap();
        gaps_seen += all.raw.iter().filter(|v| v.is_nan()).count() * usize::from(gaps);
        for (row, col) in [(0, 0), (3, 21), (24, 24)] {
            let w = Window {
                row,
                col,
                width: 16,
                height: 16,
            };
            let one = raw_window(&reader, &src, w, &src.sar_pols, (hybrid, gaps)).unwrap();
            let cut = all
                .raw
                .slice(ndarray::s![.., row..row + 16, col..col + 16])
                .to_owned();
            let bits = |a: &ndarray::Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one.raw), bits(&cut), "window at ({row}, {col})");
        }
    }
    // With gaps (temporal encoders) the clouded steps are NaN instead of filled.
    assert!(gaps_seen > 0, "a clouded step stays NaN with gaps");
}
