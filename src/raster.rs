//! Grid geometry shared by every stage: geotransforms, grids and pixel windows.

use serde::{Deserialize, Serialize};

/// GDAL affine geotransform: `[x0, dx, rx, y0, ry, dy]` (map units, north-up when rx = ry = 0).
pub type GeoTransform = [f64; 6];

/// A raster grid: size in pixels, geotransform and CRS (WKT).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Grid {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// GDAL geotransform.
    pub transform: GeoTransform,
    /// CRS as WKT (empty when the file has none).
    pub crs_wkt: String,
    /// EPSG code when the CRS has one.
    pub epsg: Option<u32>,
}

impl Grid {
    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Area of one pixel in squared CRS units (square metres in a projected CRS).
    pub fn pixel_area(&self) -> f64 {
        let [_, a, b, _, d, e] = self.transform;
        (a * e - b * d).abs()
    }

    /// Whether two geotransforms agree within `tol` pixels in origin and `tol` relative in
    /// pixel size. Real products have been seen to differ by ~1e-19 degrees.
    pub fn transform_matches(&self, other: &Grid, tol_pixels: f64) -> bool {
        let a = &self.transform;
        let b = &other.transform;
        let px = a[1].abs().max(a[5].abs()).max(1e-300);
        let origin_ok =
            (a[0] - b[0]).abs() <= tol_pixels * px && (a[3] - b[3]).abs() <= tol_pixels * px;
        let size_ok = [1usize, 2, 4, 5]
            .iter()
            .all(|&i| (a[i] - b[i]).abs() <= tol_pixels * px);
        origin_ok && size_ok
    }

    /// Bounds `[xmin, ymin, xmax, ymax]` in the grid's CRS (north-up grids).
    pub fn bounds(&self) -> [f64; 4] {
        let t = &self.transform;
        let x0 = t[0];
        let y0 = t[3];
        let x1 = t[0] + t[1] * self.width as f64 + t[2] * self.height as f64;
        let y1 = t[3] + t[4] * self.width as f64 + t[5] * self.height as f64;
        [x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)]
    }

    /// Short human description used in messages.
    pub fn describe(&self) -> String {
        let crs = match self.epsg {
            Some(e) => format!("EPSG:{e}"),
            None if self.crs_wkt.is_empty() => "no CRS".to_string(),
            None => "a CRS without EPSG code".to_string(),
        };
        let t = &self.transform;
        format!(
            "{}x{} px, {crs}, origin ({}, {}), pixel ({}, {})",
            self.width, self.height, t[0], t[3], t[1], t[5]
        )
    }
}

/// A rectangular pixel window: column/row offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First column.
    pub col: usize,
    /// First row.
    pub row: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl Window {
    /// A window covering a whole `width` x `height` raster.
    pub fn full(width: usize, height: usize) -> Self {
        Window {
            col: 0,
            row: 0,
            width,
            height,
        }
    }

    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "window col {} row {} size {}x{}",
            self.col, self.row, self.width, self.height
        )
    }
}
