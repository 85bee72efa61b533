//! `geofuse search` and scene sets that search on every run, against a real STAC API server
//! started here on 127.0.0.1 (`rustac serve`: the stac-server crate's in-memory backend,
//! installed by scripts/setup.sh). Skips with a message when rustac is absent.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::stac::*;
use common::*;
use serde_json::{json, Value};

/// A `rustac serve` process over an ItemCollection; killed when dropped.
struct StacApi {
    child: Child,
    url: String,
}

impl StacApi {
    fn start(rustac: &Path, items: &Path, port: u16) -> StacApi {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(rustac)
            .args(["serve", "--addr", &addr, "--create-collections"])
            .arg(items)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "rustac serve did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        StacApi {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for StacApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Gives every Item a footprint and a cloud cover (the search filters on them).
fn with_metadata(items: &mut [Value]) {
    for (i, it) in items.iter_mut().enumerate() {
        let (w, s, e, n) = (3.0, 51.0, 3.02, 51.02);
        it["bbox"] = json!([w, s, e, n]);
        it["geometry"] =
            json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]});
        it["properties"]["eo:cloud_cover"] = json!(if i == 2 { 80.0 } else { 5.0 });
    }
}

fn ids(path: &Path) -> Vec<String> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut ids: Vec<String> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn search_saves_the_items_the_api_finds() {
    let Some(rustac) = rustac() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, mut items) = synthetic_catalogue(d, true);
    with_metadata(&mut items);
    write_items(&d.join("all.json"), items);
    let api = StacApi::start(&rustac, &d.join("all.json"), free_port());
    let found = d.join("found.json");
    let search = |criteria: &[&str]| {
        let mut args = vec!["search", "--api", &api.url];
        args.extend_from_slice(criteria);
        args.extend(["--out", found.to_str().unwrap()]);
        let o = geofuse(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ids(&found)
    };
    let bbox = [
        "--bbox",
        "2.9,50.9,3.1,51.1",
        "--datetime",
        "2022-05-01/2022-05-31",
    ];
    assert_eq!(
        search(&[&["--collections", "sentinel-2-l2a"], &bbox[..]].concat()),
        ["S2_0", "S2_1"]
    );
    // The second optical Item is 80 % cloudy; a day holds only the first.
    assert_eq!(
        search(&["--collections", "sentinel-2-l2a", "--max-cloud", "20"]),
        ["S2_0"]
    );
    assert_eq!(
        search(&[
            "--collections",
            "sentinel-1-rtc",
            "--datetime",
            "2022-05-11"
        ]),
        ["S1_1"]
    );
    // Nothing outside the footprint.
    assert!(search(&["--collections", "sentinel-2-l2a", "--bbox", "10,40,11,41"]).is_empty());
    // A dead API: exit 2, naming it, no file.
    drop(api);
    let gone = d.join("gone.json");
    let o = Command::new(bin())
        .args([
            "search",
            "--api",
            &format!("http://127.0.0.1:{}", free_port()),
            "--collections",
            "x",
            "--out",
            gone.to_str().unwrap(),
        ])
        .env("GDAL_HTTP_MAX_RETRY", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("search failed"));
    assert!(!gone.exists());
}

#[test]
fn a_scene_set_that_searches_maps_only_the_new_items_on_the_next_run() {
    let Some(rustac) = rustac() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pipe, mut items) = synthetic_catalogue(d, true);
    with_metadata(&mut items);
    items[2]["properties"]["eo:cloud_cover"] = json!(5.0);
    write_items(&d.join("first.json"), items[..2].to_vec());
    write_items(&d.join("all.json"), items);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    common::edit(
        &pipe,
        "items = \"served/items.json\"",
        &format!("search = {{ api = \"{url}\", collections = [\"sentinel-2-l2a\"], datetime = \"2022-05-01/2022-05-31\" }}"),
    );
    common::edit(&pipe, "sar = { max_days = 3 }", &format!("sar = {{ search = {{ api = \"{url}\", collections = [\"sentinel-1-rtc\"] }}, max_days = 3 }}"));
    let out = d.join("out");
    let run = || {
        let o = Command::new(bin())
            .args([
                "run",
                pipe.to_str().unwrap(),
                "--device",
                "cpu",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let api = StacApi::start(&rustac, &d.join("first.json"), port);
    let (code, log) = run();
    assert_eq!(code, Some(0), "{log}");
    assert!(out.join("T0_2022-05-01/handcrafted.tif").exists());
    assert!(!out.join("T1_2022-05-11").exists());
    drop(api);
    // The next scheduled run: the catalogue has a new acquisition.
    let _api = StacApi::start(&rustac, &d.join("all.json"), port);
    let (code, log) = run();
    assert_eq!(code, Some(0), "{log}");
    assert!(out.join("T1_2022-05-11/handcrafted.tif").exists(), "{log}");
    assert!(
        log.contains("scene T0_2022-05-01: handcrafted is up to date"),
        "{log}"
    );
    assert!(
        !log.contains("scene T1_2022-05-11: handcrafted is up to date"),
        "{log}"
    );
}
