//! Quicklooks of a scene's products, read from their overviews: per method one row of three
//! panels, the class map in the class colours, the confidence, and the epistemic uncertainty.

use std::path::PathBuf;

use plotters::prelude::*;

use super::{render_then, FAMILY};
use crate::config::ClassDef;
use crate::error::Result;
use crate::io::reader::RasterReader;
use crate::product::{ProductBand, NODATA};

/// Longest side of a panel, pixels.
pub const PANEL: usize = 200;
const GAP: usize = 10;
const LABEL: usize = 24;

/// The three panels of one product, as RGB.
struct Panels {
    size: (usize, usize),
    class: Vec<u8>,
    confidence: Vec<u8>,
    epistemic: Vec<u8>,
    epistemic_top: f64,
}

/// Linear interpolation through colour stops (t in 0..=1).
fn ramp(stops: &[[u8; 3]], t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    std::array::from_fn(|c| (a[c] as f64 + (b[c] as f64 - a[c] as f64) * f).round() as u8)
}

const VIRIDIS: [[u8; 3]; 5] = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
];
const MAGMA: [[u8; 3]; 5] = [
    [0, 0, 4],
    [81, 18, 124],
    [183, 55, 121],
    [252, 137, 97],
    [252, 253, 191],
];
const NO_DATA: [u8; 3] = [235, 235, 235];

/// 99th percentile of the valid bytes (at least 1), the top of the epistemic stretch.
fn p99(v: &[u8]) -> u8 {
    let mut h = [0u64; 256];
    v.iter()
        .filter(|&&b| b != NODATA)
        .for_each(|&b| h[b as usize] += 1);
    let n: u64 = h.iter().sum();
    let mut acc = 0;
    for (b, c) in h.iter().enumerate() {
        acc += c;
        if n > 0 && acc * 100 >= n * 99 {
            return (b as u8).max(1);
        }
    }
    1
}

fn panels(path: &std::path::Path, classes: &[ClassDef]) -> Result<Panels> {
    let r = RasterReader::open(path)?;
    let g = r.grid()?;
    // The long side drawn at PANEL pixels: decimated from an overview, or enlarged (nearest)
    // for a small scene.
    let long = g.width.max(g.height).max(1);
    let fit = |n: usize| (n * PANEL).div_ceil(long).max(1);
    let size = (fit(g.width), fit(g.height));
    let band = |b: ProductBand| r.read_decimated_u8(b.index() + 1, size);
    let (cls, conf, epi) = (
        band(ProductBand::Class)?,
        band(ProductBand::Confidence)?,
        band(ProductBand::Epistemic)?,
    );
    let top = p99(&epi);
    let colour = |v: u8| {
        classes
            .iter()
            .find(|c| c.id == v)
            .and_then(ClassDef::rgb)
            .unwrap_or(NO_DATA)
    };
    let scaled = |v: &[u8], stops: &[[u8; 3]], top: f64| -> Vec<u8> {
        v.iter()
            .flat_map(|&b| {
                if b == NODATA {
                    NO_DATA
                } else {
                    ramp(stops, b as f64 / top)
                }
            })
            .collect()
    };
    Ok(Panels {
        size,
        class: cls.iter().flat_map(|&v| colour(v)).collect(),
        confidence: scaled(&conf, &VIRIDIS, 250.0),
        epistemic: scaled(&epi, &MAGMA, top as f64),
        epistemic_top: top as f64 * crate::product::BYTE_SCALE,
    })
}

fn blit(dst: &mut [u8], width: usize, at: (usize, usize), src: &[u8], size: (usize, usize)) {
    for r in 0..size.1 {
        let d = ((at.1 + r) * width + at.0) * 3;
        dst[d..d + size.0 * 3].copy_from_slice(&src[r * size.0 * 3..(r + 1) * size.0 * 3]);
    }
}

/// The quicklook of `products` (method name, product path) of one scene, one row per method.
pub fn quicklook(
    scene: &str,
    products: &[(String, PathBuf)],
    classes: &[ClassDef],
) -> Result<Vec<u8>> {
    let rows: Vec<(String, Panels)> = products
        .iter()
        .map(|(m, p)| Ok((m.clone(), panels(p, classes)?)))
        .collect::<Result<_>>()?;
    let (pw, ph) = rows.first().map(|r| r.1.size).unwrap_or((PANEL, PANEL));
    let width = (GAP + 3 * (pw + GAP)).max(640);
    let row_h = LABEL + ph + GAP;
    let height = 2 * LABEL + rows.len() * row_h;
    let title = format!("{scene}: class, confidence (0-1), epistemic uncertainty");
    render_then(
        width as u32,
        height as u32,
        |a| {
            a.fill(&WHITE)?;
            a.draw_text(
                &title,
                &(FAMILY, 15).into_font().color(&BLACK),
                (GAP as i32, 6),
            )?;
            for (i, (m, p)) in rows.iter().enumerate() {
                let y = (2 * LABEL + i * row_h) as i32 - LABEL as i32 + 4;
                let label = format!("{m}   (epistemic stretched 0-{:.3})", p.epistemic_top);
                a.draw_text(
                    &label,
                    &(FAMILY, 13).into_font().color(&BLACK),
                    (GAP as i32, y),
                )?;
            }
            Ok(())
        },
        |rgb| {
            let w = width;
            for (i, (_, p)) in rows.iter().enumerate() {
                let y = 2 * LABEL + i * row_h;
                for (j, img) in [&p.class, &p.confidence, &p.epistemic]
                    .into_iter()
                    .enumerate()
                {
                    blit(rgb, w, (GAP + j * (pw + GAP), y), img, p.size.min((pw, ph)));
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_hit_their_stops_and_stretch_clips() {
        assert_eq!(ramp(&VIRIDIS, 0.0), VIRIDIS[0]);
        assert_eq!(ramp(&VIRIDIS, 1.0), VIRIDIS[4]);
        assert_eq!(ramp(&VIRIDIS, 2.0), VIRIDIS[4]);
        assert_eq!(ramp(&MAGMA, 0.5), MAGMA[2]);
        let mut v = vec![10u8; 99];
        v.push(200);
        v.push(NODATA);
        assert_eq!(p99(&v), 10);
        assert_eq!(p99(&[NODATA]), 1);
    }
}
