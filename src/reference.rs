//! Vector reference data onto a scene's grid, on the Rust side with the `geo` crate: each
//! feature's footprint against the scene's extent, its polygons filled by pixel centre (a
//! pixel is labelled when the polygon contains its centre; even-odd rule, so holes stay
//! unlabelled), points to their pixel, class areas; and which side of the split each feature
//! takes, so that all pixels of one polygon are on the same side.

use geo::{Area, BoundingRect, Coord, Geometry, Intersects, MapCoords, Polygon, Rect};
use ndarray::Array2;

use crate::eval::split::PixelSides;
use crate::io::vector::ReferenceFeature;
use crate::raster::Grid;

/// Label value of an unlabelled pixel.
pub const UNLABELLED: u8 = 255;

/// One feature's pixels on the grid (after overlaps were resolved).
#[derive(Debug, Clone)]
pub struct FeaturePixels {
    /// Feature id in the layer.
    pub fid: u64,
    /// Class id.
    pub class: u8,
    /// Linear pixel indices (row * width + col).
    pub pixels: Vec<usize>,
}

/// The reference rasterised onto a grid.
#[derive(Debug, Clone)]
pub struct Rasterized {
    /// Class id per pixel ([`UNLABELLED`] elsewhere).
    pub labels: Array2<u8>,
    /// Features with at least one pixel.
    pub features: Vec<FeaturePixels>,
    /// Features whose footprint misses the scene.
    pub outside: usize,
    /// Pixels claimed by features of different classes (left unlabelled).
    pub conflicts: usize,
    /// Polygon area per class id over the scene, in the CRS's units squared.
    pub areas: Vec<(u8, f64)>,
}

/// Pixel coordinates (col, row as floats; pixel (c, r) spans [c, c+1) x [r, r+1)) of a world
/// point, through the inverse of the grid's geotransform.
fn to_pixel(grid: &Grid) -> impl Fn(Coord) -> Coord + Copy {
    let [x0, a, b, y0, d, e] = grid.transform;
    let det = a * e - b * d;
    move |c: Coord| {
        let (dx, dy) = (c.x - x0, c.y - y0);
        Coord {
            x: (e * dx - b * dy) / det,
            y: (a * dy - d * dx) / det,
        }
    }
}

/// Rasterises `features` onto `grid`. Where features of different classes overlap the pixel
/// is left unlabelled (counted in `conflicts`); where features of one class overlap the first
/// keeps the pixel. `Err` names a feature whose geometry is not an area or a point.
pub fn rasterize(features: &[ReferenceFeature], grid: &Grid) -> Result<Rasterized, String> {
    let (w, h) = (grid.width, grid.height);
    let scene = Rect::new(
        Coord { x: 0.0, y: 0.0 },
        Coord {
            x: w as f64,
            y: h as f64,
        },
    );
    let px = to_pixel(grid);
    let mut labels = Array2::from_elem((h, w), UNLABELLED);
    let mut taken = vec![false; w * h];
    let mut conflict = vec![false; w * h];
    let (mut out, mut outside) = (Vec::new(), 0);
    let mut areas: Vec<(u8, f64)> = Vec::new();
    for f in features {
        let g = f.geometry.map_coords(px);
        if !g.bounding_rect().is_some_and(|r| r.intersects(&scene)) {
            outside += 1;
            continue;
        }
        let mut cells = Vec::new();
        cover(&g, w, h, &mut cells).map_err(|m| format!("feature {}: {m}", f.fid))?;
        let mut pixels = Vec::with_capacity(cells.len());
        let lab = labels.as_slice_mut().expect("standard layout");
        for i in cells {
            if !taken[i] {
                taken[i] = true;
                lab[i] = f.class;
                pixels.push(i);
            } else if lab[i] != f.class {
                conflict[i] = true;
            }
        }
        add_area(&mut areas, f.class, f.geometry.unsigned_area());
        if !pixels.is_empty() {
            out.push(FeaturePixels {
                fid: f.fid,
                class: f.class,
                pixels,
            });
        }
    }
    let conflicts = resolve_conflicts(&mut labels, &mut out, &conflict);
    areas.sort_by_key(|a| a.0);
    Ok(Rasterized {
        labels,
        features: out,
        outside,
        conflicts,
        areas,
    })
}

fn add_area(areas: &mut Vec<(u8, f64)>, class: u8, a: f64) {
    match areas.iter_mut().find(|x| x.0 == class) {
        Some(x) => x.1 += a,
        None => areas.push((class, a)),
    }
}

/// Unlabels the pixels claimed by features of different classes; returns how many.
fn resolve_conflicts(
    labels: &mut Array2<u8>,
    feats: &mut Vec<FeaturePixels>,
    conflict: &[bool],
) -> usize {
    let n = conflict.iter().filter(|&&c| c).count();
    if n == 0 {
        return 0;
    }
    let lab = labels.as_slice_mut().expect("standard layout");
    for f in feats.iter_mut() {
        f.pixels.retain(|&i| !conflict[i]);
    }
    feats.retain(|f| !f.pixels.is_empty());
    for (i, _) in conflict.iter().enumerate().filter(|x| *x.1) {
        lab[i] = UNLABELLED;
    }
    n
}

/// The pixels a geometry in pixel coordinates covers, appended to `cells`.
fn cover(g: &Geometry, w: usize, h: usize, cells: &mut Vec<usize>) -> Result<(), String> {
    match g {
        Geometry::Polygon(p) => fill_polygon(p, w, h, cells),
        Geometry::MultiPolygon(mp) => mp.0.iter().for_each(|p| fill_polygon(p, w, h, cells)),
        Geometry::Rect(r) => fill_polygon(&r.to_polygon(), w, h, cells),
        Geometry::Triangle(t) => fill_polygon(&t.to_polygon(), w, h, cells),
        Geometry::Point(p) => point_cell(p.0, w, h, cells),
        Geometry::MultiPoint(mp) => mp.0.iter().for_each(|p| point_cell(p.0, w, h, cells)),
        Geometry::GeometryCollection(gc) => {
            for g in &gc.0 {
                cover(g, w, h, cells)?;
            }
        }
        Geometry::Line(_) | Geometry::LineString(_) | Geometry::MultiLineString(_) => {
            return Err("a line is not reference data; draw polygons or points".into())
        }
    }
    Ok(())
}

fn point_cell(c: Coord, w: usize, h: usize, cells: &mut Vec<usize>) {
    if c.x >= 0.0 && c.y >= 0.0 && c.x < w as f64 && c.y < h as f64 {
        cells.push(c.y as usize * w + c.x as usize);
    }
}

/// Scanline fill: on each row, the crossings of the row's centre line with every ring's
/// edges, sorted; the pixels whose centres lie between the 1st and 2nd, 3rd and 4th, ...
/// crossing are inside (even-odd rule; a centre exactly on a left edge is inside, on a right
/// edge outside).
fn fill_polygon(p: &Polygon, w: usize, h: usize, cells: &mut Vec<usize>) {
    let Some(bb) = p.bounding_rect() else { return };
    let r0 = (bb.min().y - 0.5).ceil().max(0.0) as usize;
    let r1 = ((bb.max().y - 0.5).ceil().max(0.0) as usize).min(h);
    let rings: Vec<_> = std::iter::once(p.exterior()).chain(p.interiors()).collect();
    let mut xs = Vec::new();
    for r in r0..r1 {
        let yc = r as f64 + 0.5;
        xs.clear();
        for ring in &rings {
            for l in ring.lines() {
                let (a, b) = (l.start, l.end);
                if (a.y <= yc) != (b.y <= yc) {
                    xs.push(a.x + (yc - a.y) * (b.x - a.x) / (b.y - a.y));
                }
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            let c0 = (pair[0] - 0.5).ceil().max(0.0) as usize;
            let c1 = ((pair[1] - 0.5).ceil().max(0.0) as usize).min(w);
            cells.extend((c0..c1).map(|c| r * w + c));
        }
    }
}

/// Which side each feature takes: `test(feature)` says whether it is held out; every pixel
/// of the feature follows it.
pub fn sides(r: &Rasterized, width: usize, test: impl Fn(&FeaturePixels) -> bool) -> PixelSides {
    let n = r.labels.len();
    let mut s = PixelSides::new(width, n);
    for f in &r.features {
        let t = test(f);
        for &i in &f.pixels {
            s.set(i, t);
        }
    }
    s
}

/// The pixel nearest the mean position of a feature's pixels: (row, col).
pub fn centre(f: &FeaturePixels, width: usize) -> (usize, usize) {
    let n = f.pixels.len().max(1) as f64;
    let (sr, sc) = f.pixels.iter().fold((0.0, 0.0), |(r, c), &i| {
        (r + (i / width) as f64, c + (i % width) as f64)
    });
    ((sr / n).round() as usize, (sc / n).round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, LineString, Point};

    fn grid(w: usize, h: usize) -> Grid {
        Grid {
            width: w,
            height: h,
            transform: [500_000.0, 10.0, 0.0, 5_000_000.0, 0.0, -10.0],
            crs_wkt: String::new(),
            epsg: None,
        }
    }

    fn feature(fid: u64, class: u8, g: Geometry) -> ReferenceFeature {
        ReferenceFeature {
            fid,
            class,
            geometry: g,
        }
    }

    /// A star-shaped polygon with a hole, in world coordinates, from a seed.
    fn polygon(seed: u64, g: &Grid) -> Polygon {
        let mut rng = crate::rng::Rng::new(seed);
        let (cx, cy) = (
            g.transform[0] + 200.0 + 200.0 * rng.f64(),
            g.transform[3] - 200.0 - 200.0 * rng.f64(),
        );
        let ring = |rmax: f64, rng: &mut crate::rng::Rng| {
            let n = 5 + (rng.f64() * 9.0) as usize;
            let pts: Vec<(f64, f64)> = (0..n)
                .map(|k| {
                    let a = k as f64 / n as f64 * std::f64::consts::TAU;
                    let r = rmax * (0.5 + 0.5 * rng.f64());
                    (cx + r * a.cos(), cy + r * a.sin())
                })
                .collect();
            LineString::from(pts)
        };
        let outer = ring(180.0, &mut rng);
        let hole = ring(40.0, &mut rng);
        Polygon::new(outer, vec![hole])
    }

    #[test]
    fn scanline_fill_equals_geo_contains_on_every_pixel_centre() {
        let g = grid(64, 64);
        for seed in 0..40 {
            let p = polygon(seed, &g);
            let r = rasterize(&[feature(1, 3, Geometry::Polygon(p.clone()))], &g).unwrap();
            for row in 0..64 {
                for col in 0..64 {
                    let x = g.transform[0] + (col as f64 + 0.5) * 10.0;
                    let y = g.transform[3] - (row as f64 + 0.5) * 10.0;
                    let inside = p.contains(&Point::new(x, y));
                    assert_eq!(
                        r.labels[[row, col]] == 3,
                        inside,
                        "seed {seed} pixel ({row}, {col})"
                    );
                }
            }
        }
    }

    #[test]
    fn points_overlaps_footprints_and_areas() {
        let g = grid(10, 10);
        let sq = |x0: f64, y0: f64, s: f64| {
            Geometry::Polygon(
                Rect::new(
                    Coord { x: x0, y: y0 },
                    Coord {
                        x: x0 + s,
                        y: y0 - s,
                    },
                )
                .to_polygon(),
            )
        };
        let feats = [
            feature(1, 1, sq(500_000.0, 5_000_000.0, 40.0)), // pixels rows/cols 0..4
            feature(2, 2, sq(500_020.0, 4_999_980.0, 40.0)), // rows/cols 2..6: overlaps 2..4 with class 1
            feature(3, 1, sq(500_000.0, 5_000_000.0, 20.0)), // inside feature 1, same class
            feature(4, 4, Geometry::Point(Point::new(500_095.0, 4_999_905.0))), // pixel (9, 9)
            feature(5, 4, sq(600_000.0, 5_000_000.0, 40.0)), // outside the scene
        ];
        let r = rasterize(&feats, &g).unwrap();
        assert_eq!(r.outside, 1);
        assert_eq!(r.conflicts, 4);
        assert_eq!(r.labels[[0, 0]], 1);
        assert_eq!(r.labels[[2, 2]], UNLABELLED);
        assert_eq!(r.labels[[5, 5]], 2);
        assert_eq!(r.labels[[9, 9]], 4);
        // Feature 3 lies inside feature 1 (same class): feature 1 keeps the pixels.
        assert!(r.features.iter().all(|f| f.fid != 3));
        let f1 = r.features.iter().find(|f| f.fid == 1).unwrap();
        assert_eq!(f1.pixels.len(), 16 - 4);
        assert_eq!(r.areas, vec![(1, 1600.0 + 400.0), (2, 1600.0), (4, 0.0)]);
        // Every pixel of a feature on its side.
        let s = sides(&r, 10, |f| f.fid == 2);
        assert!(f1.pixels.iter().all(|&i| s.get(i) == Some(false)));
        assert_eq!(s.get(5 * 10 + 5), Some(true));
        assert_eq!(s.get(8 * 10 + 1), None);
    }

    #[test]
    fn a_line_is_refused() {
        let g = grid(10, 10);
        let l = Geometry::LineString(LineString::from(vec![
            (500_000.0, 5_000_000.0),
            (500_050.0, 4_999_950.0),
        ]));
        let e = rasterize(&[feature(7, 1, l)], &g).unwrap_err();
        assert!(e.contains("feature 7") && e.contains("line"), "{e}");
    }
}
