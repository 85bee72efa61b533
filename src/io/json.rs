//! JSON files of an output folder (metrics, study, manifest): read when present, written
//! atomically.

use std::path::Path;

use serde_json::Value;

use crate::error::Result;

/// Reads a JSON file if it exists and parses.
pub fn read_json(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Writes pretty JSON atomically (temporary name, then rename).
pub fn write_json(path: &Path, v: &Value) -> Result<()> {
    crate::io::writer::write_atomic(
        path,
        serde_json::to_string_pretty(v)
            .unwrap_or_default()
            .as_bytes(),
    )
}
