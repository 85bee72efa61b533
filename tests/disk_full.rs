//! A disk that fills up mid-run: the output folder on a small tmpfs. The run stops
//! with a message naming the file and saying the disk is full, exits non-zero without a
//! panic, leaves no partial product or temporary file, keeps what it finished, and a rerun
//! with room finishes with products identical to a run that never ran out of space.
//! Needs root (to mount a tmpfs); says SKIPPED otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{files_under, geofuse, series};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let size = format!("size={}k", bytes.div_ceil(4096) * 4);
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        o.status.success().then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, bytes: u64) {
        let size = format!("remount,size={}k", bytes.div_ceil(4096) * 4);
        let o = Command::new("mount")
            .args(["-o", &size])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(pipe: &Path, out: &Path) -> std::process::Output {
    geofuse(&[
        "run",
        pipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ])
}

fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

/// Products (`.tif` and sidecars) under `dir`, relative, sorted.
fn products(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|f| f.is_file() && f.to_string_lossy().contains(".tif"))
        .map(|f| f.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

#[test]
fn a_disk_that_fills_up_mid_run_fails_cleanly_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = series(dir.path(), 3, 96);
    let full = dir.path().join("full");
    assert!(run(&pipe, &full).status.success());
    let need = bytes_under(&full);
    // The disk fills at different stages: early (products), later (models kept, some
    // scenes done), at the end (report and figures).
    for (i, share) in [0.2, 0.5, 0.85].into_iter().enumerate() {
        let at = dir.path().join(format!("small-{i}"));
        let Some(fs) = Tmpfs::mount(&at, (need as f64 * share) as u64) else {
            println!(
                "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full case did not run"
            );
            return;
        };
        fill_then_rerun(&pipe, &full, &fs, need);
    }
}

fn fill_then_rerun(pipe: &Path, full: &Path, fs: &Tmpfs, need: u64) {
    let out = fs.0.join("out");
    let o = run(pipe, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the run cannot fit in {:?}", fs.0);
    assert_ne!(o.status.code(), Some(101), "no panic: {err}");
    assert!(
        err.contains("disk is full") && err.contains(out.to_str().unwrap()),
        "names the file and the cause: {err}"
    );
    let left: Vec<PathBuf> = files_under(&out)
        .into_iter()
        .filter(|f| {
            let n = f.file_name().unwrap().to_string_lossy().to_string();
            n.contains(".partial")
                || n.starts_with(".tmp-")
                || f.to_string_lossy().contains(".coreg")
        })
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
    // Whatever product is there is complete: byte-identical to the run that had room.
    let kept = products(&out);
    for p in &kept {
        let same = std::fs::read(out.join(p)).unwrap() == std::fs::read(full.join(p)).unwrap();
        assert!(same, "{} is partial", p.display());
    }
    // With room, a rerun finishes the rest: the same products as the uninterrupted run.
    fs.resize(need * 3);
    let o = run(pipe, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(products(&out), products(full));
    for p in products(full) {
        let same = std::fs::read(out.join(&p)).unwrap() == std::fs::read(full.join(&p)).unwrap();
        assert!(same, "{} differs after the rerun", p.display());
    }
    println!(
        "{:?}: disk full after {} of {} product files ({}); rerun completed",
        fs.0,
        kept.len(),
        products(full).len(),
        err.lines().next().unwrap_or("")
    );
}
