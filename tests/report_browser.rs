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

/// Rows of the screenshot (`w` pixels wide, `step` bytes a pixel) holding a coloured pixel.
fn coloured_rows(buf: &[u8], w: u32, step: usize) -> Vec<usize> {
    buf.chunks(step * w as usize)
        .enumerate()
        .filter(|(_, row)| {
            row.chunks(step).any(|p| {
                let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
                (r - g).abs() > 40 || (g - b).abs() > 40 || (r - b).abs() > 40
            })
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn the_report_opens_with_its_verdict_and_a_figure_before_any_table() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = run_series(dir.path(), 3, 96);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let at = |s: &str| {
        html.find(s)
            .unwrap_or_else(|| panic!("report.html lacks {s}"))
    };
    let (verdict, figure, table) = (at("<h2>Verdict</h2>"), at("<img"), at("<table"));
    assert!(
        verdict < figure && figure < table,
        "{verdict} {figure} {table}"
    );
    assert!(html[verdict..figure].contains("has the highest OA"));
    // The long tables are folded, and the pairwise tests are a matrix too.
    assert!(html.contains("<details><summary>Every pair"));
    assert!(html.contains("class=\"matrix\""));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.find("## Verdict").unwrap() < md.find("\n| ").unwrap());
    let Some(browser) = chromium() else {
        println!("SKIPPED the rendering half: no chromium on PATH (scripts/setup.sh installs Debian's chromium)");
        return;
    };
    // Rendered in a 1400 x 900 window (one screen), the figure is drawn.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-first-screen.png");
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (w, _, step, buf) = read_png(&shot);
    // A dot of the overall-accuracy figure spans 8 rows.
    let rows = coloured_rows(&buf, w, step).len();
    assert!(
        rows >= 8,
        "no figure on the first screen: {rows} coloured rows"
    );
}
