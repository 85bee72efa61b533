//! A pipeline file read into scenes: parsed, relative paths resolved, scene sets and
//! `[[catalogue]]` tables expanded (the catalogue's Items read or searched), seasons resolved,
//! validated. Lives above [`crate::config`] because expanding a catalogue table reads STAC
//! documents through [`crate::catalogue`].

use std::path::{Path, PathBuf};

use crate::config::Pipeline;
use crate::error::{Error, Result};

impl Pipeline {
    /// Reads, parses, resolves relative paths and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                path,
                format!("cannot read the pipeline file ({e}); check the path"),
            )
        })?;
        // A UTF-8 byte-order mark (Windows editors write one) is not part of the TOML.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut p: Pipeline = toml::from_str(text)
            .map_err(|e| Error::config(path, e.to_string().trim_end().to_string()))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        p.resolve_paths(&base);
        for set in &p.scene_sets {
            let found = set.expand(&base).map_err(|m| Error::config(path, m))?;
            p.scenes.extend(found);
        }
        for set in &p.catalogue {
            let found = set
                .expand(&base, p.time.as_ref())
                .map_err(|m| Error::config(path, m))?;
            p.scenes.extend(found);
        }
        p.resolve_seasons().map_err(|m| Error::config(path, m))?;
        p.apply_postprocess();
        p.validate(path)?;
        Ok(p)
    }
}
