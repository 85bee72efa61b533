//! Options and value parsers shared by the commands.

use std::path::PathBuf;

use crate::pipeline::RunOptions;

/// Options shared by the stage commands.
#[derive(clap::Args)]
pub(super) struct StageOptions {
    /// Output folder (overrides the pipeline's `output`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compute device for learned methods: auto, cpu or wgpu.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "wgpu"])]
    device: String,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

impl StageOptions {
    pub(super) fn run_options(self) -> RunOptions {
        RunOptions {
            out: self.out,
            quiet: self.quiet,
            device: self.device,
            ..Default::default()
        }
    }
}

fn parse_pair<T: std::str::FromStr>(s: &str, what: &str) -> Result<(T, T), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("use {what}, e.g. 1,0"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<T>()
            .map_err(|_| format!("`{v}` is not a number"))
    };
    Ok((p(a)?, p(b)?))
}

pub(super) fn parse_offset(s: &str) -> Result<(i32, i32), String> {
    parse_pair(s, "dx,dy")
}

pub(super) fn parse_range(s: &str) -> Result<(f64, f64), String> {
    parse_pair(s, "min,max")
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

pub(super) fn parse_definitions(s: &str) -> Result<crate::features::glcm::Definitions, String> {
    use crate::features::glcm::Definitions;
    [Definitions::Otb, Definitions::Standard]
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| "use otb or standard".into())
}

pub(super) fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once('/').ok_or("use I/N, e.g. 0/4")?;
    let i: usize = a.trim().parse().map_err(|_| "I must be a number")?;
    let n: usize = b.trim().parse().map_err(|_| "N must be a number")?;
    if n == 0 || i >= n {
        return Err("need 0 <= I < N".into());
    }
    Ok((i, n))
}

pub(super) fn parse_rank(s: &str) -> std::result::Result<crate::suggest::Rank, String> {
    crate::suggest::Rank::ALL
        .iter()
        .find(|(_, n)| *n == s)
        .map(|(r, _)| *r)
        .ok_or_else(|| {
            let names: Vec<&str> = crate::suggest::Rank::ALL.iter().map(|(_, n)| *n).collect();
            format!("`{s}` is not a ranking; use one of {}", names.join(", "))
        })
}
