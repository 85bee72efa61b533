//! The scheduler examples under deploy/: each is parsed and its geofuse
//! commands run here, as the scheduler would run them: the crontab line over a growing
//! folder of scenes found by a pattern, the Slurm submit script through a stand-in `sbatch`
//! that runs what it is given (array tasks at the same time), the Kubernetes Jobs' container
//! commands with their completion indices.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::series;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A folder with `geofuse` (this build) and the given stand-in tools, to put first on PATH.
fn bin_dir(dir: &Path, tools: &[(&str, &str)]) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(common::bin(), bin.join("geofuse")).unwrap();
    for (name, script) in tools {
        let p = bin.join(name);
        std::fs::write(&p, script).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Scene-name -> method product count in the top-level manifest.
fn products_per_scene(out: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for p in json(&out.join("manifest.json"))["products"]
        .as_array()
        .unwrap()
    {
        *m.entry(p["scene"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

/// Copies synthetic scene `k` of `src` into `incoming/` under dated names, as files arrive
/// from a download service: `T31UFS_<date>_S2.tif`, the SAR pass `sar_days` later, the mask,
/// and the labels when `labelled`.
fn arrive(src: &Path, k: usize, date: &str, sar_date: &str, labelled: bool) {
    let inc = src.join("incoming");
    std::fs::create_dir_all(&inc).unwrap();
    let s = src.join(format!("scene-{k:02}"));
    let cp = |a: &str, b: String| std::fs::copy(s.join(a), inc.join(b)).unwrap();
    cp("optical.tif", format!("T31UFS_{date}_S2.tif"));
    cp("sar.tif", format!("T31UFS_{sar_date}_S1.tif"));
    cp("cloud_mask.tif", format!("T31UFS_{date}_mask.tif"));
    if labelled {
        cp("labels.tif", format!("T31UFS_{date}_labels.tif"));
    }
}

/// The series pipeline with its scenes replaced by a scene set over `incoming/`.
fn incoming_pipeline(dir: &Path) -> PathBuf {
    let pipe = series(dir, 3, 64);
    let text = std::fs::read_to_string(&pipe).unwrap();
    let (head, tail) = (
        text.find("[[scenes]]").unwrap(),
        text.find("[tiling]").unwrap(),
    );
    let set = r#"[[scene_sets]]
optical = "incoming/*_S2.tif"
match = "{tile}_{date}_S2"
name = "{tile}_{date}"
bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
sar = { path = "{dir}/{tile}_*_S1.tif", max_days = 3 }
labels = "{dir}/{tile}_{date}_labels.tif"
mask = { path = "{dir}/{tile}_{date}_mask.tif", invalid = [1, 2] }

"#;
    let p = dir.join("incoming.toml");
    std::fs::write(&p, format!("{}{set}{}", &text[..head], &text[tail..])).unwrap();
    p
}

/// The crontab's variables and its one job line (five valid time fields, the command).
fn crontab() -> (Vec<(String, String)>, String) {
    let text = std::fs::read_to_string(repo().join("deploy/cron/geofuse.crontab")).unwrap();
    let mut vars = Vec::new();
    let mut job = None;
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=').filter(|(k, _)| !k.contains(' ')) {
            vars.push((k.to_string(), v.to_string()));
            continue;
        }
        let f: Vec<&str> = l.splitn(6, ' ').collect();
        let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
        for (x, (lo, hi)) in f[..5].iter().zip(limits) {
            let ok = *x == "*" || x.parse::<u32>().is_ok_and(|v| (lo..=hi).contains(&v));
            assert!(ok, "crontab field `{x}`");
        }
        assert!(job.replace(f[5].to_string()).is_none(), "one job line");
    }
    (vars, job.expect("a job line"))
}

#[test]
fn the_cron_job_over_a_growing_folder_maps_only_new_scenes() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = incoming_pipeline(dir.path());
    arrive(dir.path(), 1, "2024-05-01", "2024-05-02", true);
    // A second SAR pass for the first scene, further in time: the nearest one is taken.
    std::fs::copy(
        dir.path().join("scene-03/sar.tif"),
        dir.path().join("incoming/T31UFS_2024-05-04_S1.tif"),
    )
    .unwrap();
    arrive(dir.path(), 2, "2024-05-11", "2024-05-10", true);
    let (vars, job) = crontab();
    let names: Vec<_> = vars.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(names, ["GEOFUSE_PIPELINE", "GEOFUSE_OUT", "GEOFUSE_LOG"]);
    let out = dir.path().join("out");
    let log = dir.path().join("cron.log");
    let path = bin_dir(dir.path(), &[]);
    let night = || {
        let s = Command::new("sh")
            .args(["-c", &job])
            .env("PATH", &path)
            .env("GEOFUSE_PIPELINE", &pipe)
            .env("GEOFUSE_OUT", &out)
            .env("GEOFUSE_LOG", &log)
            .status()
            .unwrap();
        assert!(
            s.success(),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    night();
    let first = products_per_scene(&out);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["T31UFS_2024-05-01", "T31UFS_2024-05-11"]
    );
    let p = geofuse::pipeline::load_pipeline(&pipe, None).unwrap();
    assert!(
        p.scenes[0].sar.path.ends_with("T31UFS_2024-05-02_S1.tif"),
        "{:?}",
        p.scenes[0].sar.path
    );
    // A new, unlabelled scene arrives: the next night maps only it, with the same models.
    arrive(dir.path(), 3, "2024-05-21", "2024-05-20", false);
    std::fs::write(&log, "").unwrap();
    night();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("up to date (hashes match), skipped").count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("model up to date (training inputs unchanged), reused"),
        "{text}"
    );
    assert!(
        text.contains("scene T31UFS_2024-05-21: method handcrafted"),
        "{text}"
    );
    assert_eq!(products_per_scene(&out).len(), 3);
}

/// A stand-in `sbatch`: records its arguments, prints a job id (`--parsable`), runs `--wrap`
/// commands (output in `$FAKE_SLURM_LOG.wrap`), and runs an array script once per index, all indices at the same time, with the
/// `--export` variables and SLURM_ARRAY_TASK_ID (output in `$FAKE_SLURM_LOG.out`).
const SBATCH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
n=0; [ -f "$FAKE_SLURM_LOG" ] && n=$(wc -l < "$FAKE_SLURM_LOG")
id=$((1000 + n))
echo "$id sbatch $*" >> "$FAKE_SLURM_LOG"
wrap=""; array=""; script=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wrap) wrap="$2"; shift 2 ;;
    --array=*) array="${1#--array=}"; shift ;;
    --export=*) IFS=',' read -ra kv <<< "${1#--export=}"
      for x in "${kv[@]}"; do [ "$x" = ALL ] || export "$x"; done; shift ;;
    --*) shift ;;
    *) script="$1"; shift ;;
  esac
done
if [ -n "$wrap" ]; then bash -c "$wrap" >> "$FAKE_SLURM_LOG.wrap" 2>&1; fi
if [ -n "$array" ]; then
  pids=()
  for i in $(seq "${array%-*}" "${array#*-}"); do
    SLURM_ARRAY_TASK_ID=$i bash "$script" >> "$FAKE_SLURM_LOG.out" 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
fi
echo "$id"
"#;

#[test]
fn the_slurm_script_trains_once_then_maps_shards_then_merges() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = series(dir.path(), 4, 64);
    let out = dir.path().join("out");
    let log = dir.path().join("slurm.log");
    let path = bin_dir(dir.path(), &[("sbatch", SBATCH)]);
    let o = Command::new("bash")
        .arg(repo().join("deploy/slurm/submit.sh"))
        .args([pipe.to_str().unwrap(), out.to_str().unwrap(), "3"])
        .env("PATH", &path)
        .env("FAKE_SLURM_LOG", &log)
        .output()
        .unwrap();
    let tasks = std::fs::read_to_string(dir.path().join("slurm.log.out")).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}\n{tasks}",
        String::from_utf8_lossy(&o.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = calls.lines().collect();
    assert_eq!(lines.len(), 3, "{calls}");
    assert!(
        lines[1].contains("--dependency=afterok:1000") && lines[1].contains("--array=0-2"),
        "{calls}"
    );
    assert!(lines[2].contains("--dependency=afterany:1001"), "{calls}");
    // The array tasks reused the trained models; every scene was mapped by one task.
    assert!(
        tasks.contains("model up to date (training inputs unchanged), reused"),
        "{tasks}"
    );
    assert!(
        !tasks.contains("training on"),
        "only the train job trains:\n{tasks}"
    );
    let per = products_per_scene(&out);
    assert_eq!(per.len(), 4, "{per:?}");
    assert!(per.values().all(|&n| n == 2));
    assert!(out.join("report.html").exists() && out.join("handcrafted.vrt").exists());
}

/// The Kubernetes manifest's documents, parsed as YAML (python3-yaml) into JSON.
fn k8s_documents() -> Vec<serde_json::Value> {
    let o = Command::new("python3")
        .args(["-c", "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
        .arg(repo().join("deploy/kubernetes/geofuse-jobs.yaml"))
        .output()
        .expect("python3 (scripts/setup.sh installs python3-yaml)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_kubernetes_jobs_parse_and_their_commands_map_every_scene() {
    let docs = k8s_documents();
    assert_eq!(docs.len(), 2);
    for d in &docs {
        assert_eq!(d["apiVersion"], "batch/v1");
        assert_eq!(d["kind"], "Job");
    }
    let map = &docs[1]["spec"];
    assert_eq!(map["completionMode"], "Indexed");
    assert_eq!(map["completions"], map["parallelism"]);
    let n = map["completions"].as_u64().unwrap() as usize;
    let cmd = |d: &serde_json::Value| -> Vec<String> {
        let c = &d["spec"]["template"]["spec"]["containers"][0]["command"];
        serde_json::from_value(c.clone()).unwrap()
    };
    let (train, shard) = (cmd(&docs[0]), cmd(&docs[1]));
    assert!(
        shard[2].contains(&format!("--shard $JOB_COMPLETION_INDEX/{n}")),
        "{shard:?}"
    );
    // Run them here with the volume at a temporary folder: training, then every index at once.
    let dir = tempfile::tempdir().unwrap();
    let pipe = series(dir.path(), 5, 64);
    assert_eq!(pipe, dir.path().join("pipeline.toml"));
    let data = dir.path().to_str().unwrap();
    let path = bin_dir(dir.path(), &[]);
    let sh = |c: &[String], index: Option<usize>| {
        let mut k = Command::new(&c[0]);
        k.arg(&c[1])
            .arg(c[2].replace("/data", data))
            .env("PATH", &path);
        if let Some(i) = index {
            k.env("JOB_COMPLETION_INDEX", i.to_string());
        }
        k.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let o = sh(&train, None).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pods: Vec<_> = (0..n).map(|i| sh(&shard, Some(i))).collect();
    for p in pods {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let per = products_per_scene(&dir.path().join("out"));
    assert_eq!(per.len(), 5, "{per:?}");
}
