//! Progress and log lines: plain timestamped lines on stderr (on a terminal or not), or
//! nothing; shared by the runner and the methods.

use std::io::IsTerminal;

/// Log sink: plain timestamped lines (on a terminal or not), or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    /// Print nothing.
    pub quiet: bool,
}

impl Log {
    /// An informational line on stderr.
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            if std::io::stderr().is_terminal() {
                eprintln!("\x1b[2m[geofuse]\x1b[0m {msg}");
            } else {
                eprintln!("[geofuse] {msg}");
            }
        }
    }
}

/// Progress over a known number of tiles: a bar on a terminal, a log line every 10%
/// otherwise. Safe to tick from worker threads.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: String,
    unit: &'static str,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    log: Log,
}

impl Progress {
    /// One step done, with a status (shown on the bar, or logged on every step when not empty).
    pub fn step(&self, status: &str) {
        match &self.bar {
            Some(b) => {
                b.set_message(format!("{} {status}", self.what));
                self.tick();
            }
            None => {
                let d = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                self.log.info(&format!(
                    "  {} {d}/{} {}: {status}",
                    self.what, self.total, self.unit
                ));
            }
        }
    }

    /// One step done.
    pub fn tick(&self) {
        let d = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match &self.bar {
            Some(b) => {
                b.inc(1);
                if d == self.total {
                    b.finish_and_clear();
                }
            }
            None => {
                if d == self.total || d.is_multiple_of((self.total / 10).max(1)) {
                    self.log.info(&format!(
                        "  {}: {d}/{} {}",
                        self.what, self.total, self.unit
                    ));
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Log {
    /// A progress reporter for `total` tiles.
    pub fn progress(&self, what: &str, total: usize) -> Progress {
        self.progress_in(what, total, "tiles")
    }

    /// A progress reporter for `total` steps of `unit` (tiles, epochs).
    pub fn progress_in(&self, what: &str, total: usize, unit: &'static str) -> Progress {
        let bar = (!self.quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "  {{msg:18}} [{{bar:40}}] {{pos}}/{{len}} {unit} {{elapsed_precise}} eta {{eta}}"
            )) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(what.to_string());
            b
        });
        Progress {
            bar,
            what: what.into(),
            unit,
            total,
            done: Default::default(),
            log: *self,
        }
    }
}
