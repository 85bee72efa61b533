//! The standalone tools (`geofuse texture`, `indices`, `classify`): tiled output equals the
//! kernels run on the whole image, deterministic, and bad input exits 2 naming the file.

mod common;

use std::path::Path;

use common::*;
use gdal::Metadata;
use geofuse::features::glcm::{glcm_features, quantise, Definitions, GlcmParams, FEATURE_NAMES};
use geofuse::features::indices::spectral_index;
use geofuse::io::reader::RasterReader;
use geofuse::raster::Window;

fn synth(dir: &Path, size: usize) {
    scene_with_pipeline(dir, size, 5, size);
}

fn read_all(path: &Path, band: usize) -> ndarray::Array2<f32> {
    let r = RasterReader::open(path).unwrap();
    let ds = gdal::Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    r.read_band(band, Window::full(w, h)).unwrap()
}

fn same_bits(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

#[test]
fn texture_tool_equals_the_kernel_on_the_whole_image_for_any_tile_size() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 150);
    let opt = dir.path().join("optical.tif");
    // B08 (band 7) in DN with clouds as nodata; OTB-style fixed range.
    let img = read_all(&opt, 7);
    let q = quantise(img.view(), 0.0, 6000.0, 8, Definitions::Otb);
    let full = glcm_features(
        q.view(),
        &GlcmParams {
            radius: 2,
            offset: (1, -1),
            levels: 8,
            definitions: Definitions::Otb,
        },
    );
    for tile in ["37", "64", "512"] {
        let out = dir.path().join(format!("tex{tile}.tif"));
        let o = geofuse(&[
            "texture",
            opt.to_str().unwrap(),
            "--band",
            "7",
            "--offset",
            "1,-1",
            "--levels",
            "8",
            "--range",
            "0,6000",
            "--tile",
            tile,
            "--compress",
            "none",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for (b, name) in geofuse::tools::otb_simple().iter().enumerate() {
            let k = FEATURE_NAMES.iter().position(|n| n == name).unwrap();
            let got = read_all(&out, b + 1);
            let want = full.index_axis(ndarray::Axis(0), k).to_owned();
            assert!(same_bits(&got, &want), "tile {tile}, {name}");
        }
        let ds = gdal::Dataset::open(&out).unwrap();
        assert_eq!(ds.rasterband(1).unwrap().description().unwrap(), "energy");
    }
}

#[test]
fn indices_tool_equals_the_kernel_and_names_its_bands() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 100);
    let opt = dir.path().join("optical.tif");
    let out = dir.path().join("ri.tif");
    let o = geofuse(&[
        "indices",
        opt.to_str().unwrap(),
        "--list",
        "NDVI,NDMI,BI",
        "--scale",
        "0.0001",
        "--tile",
        "33",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = |i: usize| read_all(&opt, i).mapv(|v| v * 0.0001f32);
    let (g, r, nir, swir) = (b(2), b(3), b(7), b(9));
    let want = [
        spectral_index("NDVI", &[r.view(), nir.view()]).unwrap(),
        spectral_index("NDMI", &[nir.view(), swir.view()]).unwrap(),
        spectral_index("BI", &[g.view(), r.view()]).unwrap(),
    ];
    let ds = gdal::Dataset::open(&out).unwrap();
    for (i, (w, name)) in want.iter().zip(["NDVI", "NDMI", "BI"]).enumerate() {
        assert!(same_bits(&read_all(&out, i + 1), w), "{name}");
        assert_eq!(ds.rasterband(i + 1).unwrap().description().unwrap(), name);
    }
}

#[test]
fn classify_tool_learns_the_labels_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 128);
    let (opt, lab) = (
        dir.path().join("optical.tif"),
        dir.path().join("labels.tif"),
    );
    let run = |out: &Path, tile: &str| {
        let o = geofuse(&[
            "classify",
            opt.to_str().unwrap(),
            "--labels",
            lab.to_str().unwrap(),
            "--trees",
            "20",
            "--max-depth",
            "10",
            "--samples-per-class",
            "300",
            "--tile",
            tile,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let (a, b) = (dir.path().join("a.tif"), dir.path().join("b.tif"));
    let said = run(&a, "512");
    assert!(said.contains("train") && said.contains("predict"), "{said}");
    run(&b, "40");
    for band in 1..=PRODUCT_BANDS {
        assert_eq!(band_values(&a, band), band_values(&b, band), "band {band}");
    }
    // Optical bands alone separate most classes of the synthetic scene (not grassland from
    // wetland, which differ only in SAR).
    let labels = band_values(&lab, 1);
    let classes = band_values(&a, 1);
    let (mut n, mut ok) = (0, 0);
    for (l, c) in labels.iter().zip(&classes) {
        if *l > 0.0 && *c != 255.0 {
            n += 1;
            ok += (l == c) as usize;
        }
    }
    assert!(
        ok as f64 / n as f64 > 0.75,
        "accuracy {}",
        ok as f64 / n as f64
    );
    // Uncertainty bands: on the 0..250 scale, not all zero.
    assert!(named_band(&a, "total")
        .iter()
        .any(|&v| v > 0.0 && v <= 250.0));
    // The product contract's sixth band: 3 (inputs present) wherever a class was written.
    let m = named_band(&a, "modalities");
    assert!(classes
        .iter()
        .zip(&m)
        .all(|(c, m)| (*c == 255.0) == (*m == 0.0)));
    // Boosted trees through the same tool: as accurate within a few points, deterministic.
    let boosted = |out: &Path| {
        let o = geofuse(&[
            "classify",
            opt.to_str().unwrap(),
            "--labels",
            lab.to_str().unwrap(),
            "--classifier",
            "boosted",
            "--rounds",
            "30",
            "--max-depth",
            "4",
            "--samples-per-class",
            "300",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        band_values(out, 1)
    };
    let (c, d) = (dir.path().join("c.tif"), dir.path().join("d.tif"));
    let bc = boosted(&c);
    assert_eq!(bc, boosted(&d), "boosted runs differ");
    let okb = labels
        .iter()
        .zip(&bc)
        .filter(|(l, c)| **l > 0.0 && **c != 255.0 && l == c)
        .count();
    assert!(
        okb as f64 / n as f64 > 0.7,
        "boosted accuracy {}",
        okb as f64 / n as f64
    );
}

#[test]
fn tool_outputs_are_the_same_bytes_whatever_the_thread_count() {
    // Nine 256 px tiles (whole output blocks) finish in a different order on one, two and
    // three threads, and a block cache smaller than the outputs makes GDAL write blocks out
    // while the run goes on; blocks are still written in tile order, so the bytes do not
    // change. (A cache smaller than one input block would also flush a block in the middle
    // of a write, at a moment that depends on the other threads: not a setting to run with.)
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 768);
    let (opt, lab) = (
        dir.path().join("optical.tif"),
        dir.path().join("labels.tif"),
    );
    let run = |threads: &str, args: &[&str]| {
        let out = dir.path().join(format!("{}-{threads}.tif", args[0]));
        let o = std::process::Command::new(bin())
            .args(args)
            .args(["--tile", "256", "--out", out.to_str().unwrap()])
            .env("RAYON_NUM_THREADS", threads)
            .env("GDAL_CACHEMAX", "6")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(&out).unwrap()
    };
    let (o, l) = (opt.to_str().unwrap(), lab.to_str().unwrap());
    let commands: [&[&str]; 3] = [
        &[
            "classify",
            o,
            "--labels",
            l,
            "--trees",
            "10",
            "--samples-per-class",
            "100",
        ],
        &["indices", o, "--list", "NDVI,NDMI"],
        &["texture", o, "--band", "7", "--radius", "2"],
    ];
    for args in commands {
        let one = run("1", args);
        for threads in ["2", "3"] {
            assert!(
                one == run(threads, args),
                "{} on {threads} threads",
                args[0]
            );
        }
    }
}

#[test]
fn tools_refuse_bad_input_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 64);
    let opt = dir.path().join("optical.tif");
    let out = dir.path().join("x.tif");
    let nope = dir.path().join("nope.tif");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "texture",
                opt.to_str().unwrap(),
                "--band",
                "11",
                "--out",
                out.to_str().unwrap(),
            ],
            "--band 11",
        ),
        (
            vec![
                "texture",
                opt.to_str().unwrap(),
                "--features",
                "energy,shine",
                "--out",
                out.to_str().unwrap(),
            ],
            "shine",
        ),
        (
            vec![
                "indices",
                opt.to_str().unwrap(),
                "--bands",
                "B02,B03",
                "--out",
                out.to_str().unwrap(),
            ],
            "name every band",
        ),
        (
            vec![
                "indices",
                nope.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "nope.tif",
        ),
    ];
    for (args, needle) in cases {
        let o = geofuse(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    // Labels on another grid.
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    synth(&small, 32);
    let o = geofuse(&[
        "classify",
        opt.to_str().unwrap(),
        "--labels",
        small.join("labels.tif").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("labels.tif") && err.contains("grid"), "{err}");
    assert!(!out.exists());
}

#[test]
fn interleaved_and_band_sequential_reads_agree_with_per_band_reads() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 70);
    let opt = dir.path().join("optical.tif");
    {
        // Punch nodata (0) holes into band 7.
        let ds = gdal::Dataset::open_ex(
            &opt,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        let mut band = ds.rasterband(7).unwrap();
        let mut hole = gdal::raster::Buffer::new((4, 3), vec![0u16; 12]);
        band.write((10, 12), (4, 3), &mut hole).unwrap();
    }
    let r = RasterReader::open(&opt).unwrap();
    let win = Window {
        col: 5,
        row: 9,
        width: 41,
        height: 30,
    };
    let bands = [7usize, 1, 3];
    let seq = r.read(&bands, win).unwrap();
    let inter = r.read_interleaved(&bands, win).unwrap();
    let mut nan = 0;
    for (k, &b) in bands.iter().enumerate() {
        // The slow twin: one band at a time (nodata 0 becomes NaN in all three).
        let one = r.read_band(b, win).unwrap();
        for row in 0..win.height {
            for col in 0..win.width {
                let v = one[[row, col]];
                let s = seq[[k, row, col]];
                let i = inter[(row * win.width + col) * bands.len() + k];
                nan += v.is_nan() as usize;
                assert!(v.to_bits() == s.to_bits() || (v.is_nan() && s.is_nan()));
                assert!(v.to_bits() == i.to_bits() || (v.is_nan() && i.is_nan()));
            }
        }
    }
    assert_eq!(nan, 12, "the nodata hole reads as NaN");
}
