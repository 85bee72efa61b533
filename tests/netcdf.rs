//! `geofuse split-dates`: NetCDF time series (../shared/data/worldcereal_flanders/*/raw_netcdf)
//! into one GeoTIFF per date, equal to the GeoTIFFs made from the same files; a NetCDF without
//! a time dimension is refused. The real-data test skips with a message when the folder is
//! absent.

mod common;

use std::process::Command;

use common::stac::{flanders_dates, halve, read_band};
use common::*;

fn split(args: &[&str]) {
    let o = geofuse(&[&["split-dates"], args].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn split_dates_gives_the_geotiffs_made_from_the_same_netcdf() {
    let Some(data) = shared_data("worldcereal_flanders") else {
        return;
    };
    let chip = "00002806639B424A";
    let nc = |s: &str| flanders_a_netcdf(&data, s);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    split(&[&nc("S2_L2A_10m"), "--out", out, "--prefix", "S2_10m"]);
    split(&[
        &nc("S2_L2A_20m"),
        "--out",
        out,
        "--prefix",
        "S2_20m",
        "--mask",
        "SCL",
    ]);
    split(&[
        &nc("S1_GRD-ASCENDING_20m"),
        "--out",
        out,
        "--prefix",
        "S1",
        "--physical",
    ]);
    let files = files_under(dir.path());
    let count = |p: &str| {
        files
            .iter()
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(p))
            .count()
    };
    assert_eq!(
        (count("S2_10m_"), count("S2_20m_SCL_"), count("S1_")),
        (118, 118, 159)
    );
    let d = dir.path();
    for (s2, s1) in flanders_dates(&data.join(chip), chip) {
        let stack = data.join(chip).join(format!("{chip}_S2L2A_{s2}.tif"));
        // 10 m bands as they are; 20 m bands at their own size (the stack holds them
        // nearest-upsampled); the SCL likewise; S1 dB from int32 x 1e-4.
        for (b, (file, fb)) in [
            (1, ("S2_10m", 1)),
            (4, ("S2_20m", 1)),
            (7, ("S2_10m", 4)),
            (10, ("S2_20m", 5)),
        ] {
            let (want, size, ..) = read_band(&stack, b);
            let (got, gsize, gt, ..) = read_band(&d.join(format!("{file}_{s2}.tif")), fb);
            let want = if gsize == size {
                want
            } else {
                halve(&want, size)
            };
            assert_eq!(got, want, "{s2} band {b}");
            assert_eq!((gt[0], gt[3]), (501360.0, 5629680.0));
        }
        let (scl, size, ..) = read_band(&data.join(chip).join(format!("{chip}_S2SCL_{s2}.tif")), 1);
        assert_eq!(
            read_band(&d.join(format!("S2_20m_SCL_{s2}.tif")), 1).0,
            halve(&scl, size)
        );
        let (vv, size, ..) = read_band(
            &data.join(chip).join(format!("{chip}_S1GRDasc_{s1}.tif")),
            1,
        );
        let (got, ..) = read_band(&d.join(format!("S1_{s1}.tif")), 2);
        for (x, y) in halve(&vv, size).iter().zip(&got) {
            // The NetCDF's fill value 0 is NaN here; the GeoTIFF kept it as 0 dB.
            let same = (x - y).abs() < 1e-5 || (y.is_nan() && (x.is_nan() || *x == 0.0));
            assert!(same, "{s1}: {x} vs {y}");
        }
    }
    // The acquisition time travels as `date` metadata (the STAC Items' datetime).
    let t = geofuse::io::reader::metadata_value(&d.join("S1_2018-04-21.tif"), &["date"]).unwrap();
    assert!(t.starts_with("2018-04-21T"), "{t}");
}

#[test]
fn a_netcdf_without_a_time_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    geofuse::synth::generate(
        &d.join("s"),
        &geofuse::synth::SynthOptions {
            size: 32,
            seed: 1,
            strip_rows: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let nc = d.join("plain.nc");
    let st = Command::new("gdal_translate")
        .args(["-q", "-of", "netCDF"])
        .arg(d.join("s/optical.tif"))
        .arg(&nc)
        .status()
        .expect("gdal_translate (Debian gdal-bin; scripts/setup.sh installs it)");
    assert!(st.success());
    let out = d.join("out");
    let o = geofuse(&[
        "split-dates",
        nc.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plain.nc") && err.contains("time dimension"),
        "{err}"
    );
    assert!(!out.exists() || files_under(&out).is_empty());
    let o = geofuse(&[
        "split-dates",
        d.join("missing.nc").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}
