//! A QGIS layer style beside each product (`<scene>/<method>.qml`, the name QGIS loads with
//! the raster): a paletted renderer of the class band with the class table's names and
//! colours, so any QGIS version shows them without reading GDAL's `.aux.xml`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::config::ClassDef;
use crate::error::Result;

/// The style's XML (every class name escaped).
pub fn style(classes: &[ClassDef]) -> String {
    let mut s = String::from("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<qgis version=\"3.28\" styleCategories=\"Symbology\">\n  <pipe>\n    <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n      <rasterTransparency/>\n      <colorPalette>\n");
    for c in classes {
        let _ = writeln!(
            s,
            "        <paletteEntry value=\"{}\" color=\"{}\" label=\"{}\" alpha=\"255\"/>",
            c.id,
            crate::report::html_escape(&c.color.to_lowercase()),
            crate::report::html_escape(&c.name)
        );
    }
    s.push_str("      </colorPalette>\n    </rasterrenderer>\n  </pipe>\n</qgis>\n");
    s
}

/// Writes the style beside `product` (atomically); returns its path.
pub fn write_beside(product: &Path, classes: &[ClassDef]) -> Result<PathBuf> {
    let path = product.with_extension("qml");
    crate::io::writer::write_atomic(&path, style(classes).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_lists_every_class_with_escaped_names() {
        let classes = vec![
            ClassDef {
                id: 1,
                name: "water".into(),
                color: "#0000FF".into(),
            },
            ClassDef {
                id: 7,
                name: "\"wet\" <land> & co".into(),
                color: "#33a02c".into(),
            },
        ];
        let s = style(&classes);
        assert!(s.contains(
            "<paletteEntry value=\"1\" color=\"#0000ff\" label=\"water\" alpha=\"255\"/>"
        ));
        assert!(s.contains("label=\"&quot;wet&quot; &lt;land&gt; &amp; co\""));
        assert_eq!(s.matches("<paletteEntry").count(), 2);
    }
}
