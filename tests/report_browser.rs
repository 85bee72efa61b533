//! report.html rendered by a real browser: headless Chromium (Debian's `chromium`,
//! installed by scripts/setup.sh) opens the report offline and saves a screenshot, whose path
//! the test prints:
//! `cargo test --release --test report_browser -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{read_png, run_series};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| {
            let o = Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .ok()?;
            o.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
}

fn screenshot(browser: &Path, html: &Path, png: &Path, profile: &Path) {
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn chromium_renders_the_report_offline_with_its_figures() {
    let Some(browser) = chromium() else {
        println!("SKIPPED: no chromium on PATH (scripts/setup.sh installs Debian's chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = run_series(dir.path(), 3, 96);
    // The report is self-contained: moved away from its plots folder it shows the same.
    let alone = dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(out.join("report.html"), alone.join("report.html")).unwrap();
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    screenshot(
        &browser,
        &alone.join("report.html"),
        &shot,
        &dir.path().join("profile"),
    );
    let (w, h, step, buf) = read_png(&shot);
    assert_eq!((w, h), (1400, 6000));
    // Colours beyond greys: the figures (blue confusion cells, coloured curves and class
    // maps) were decoded from their inline data and drawn.
    let coloured = buf
        .chunks(step)
        .filter(|p| {
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            (r - g).abs() > 40 || (g - b).abs() > 40 || (r - b).abs() > 40
        })
        .count();
    assert!(
        coloured > 20_000,
        "only {coloured} coloured pixels: figures not drawn?"
    );
    println!("screenshot of report.html: {}", shot.display());
}
