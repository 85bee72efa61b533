//! The report's charts. Each takes plain numbers (no pipeline types) and returns PNG bytes.

use plotters::prelude::*;

use super::{render, series_color, Area, Drawn, FAMILY};
use crate::error::Result;

/// One named line of (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Row-normalised confusion matrix (rows: reference class, columns: predicted class) of a
/// `k` x `k` reference-major count matrix; rows without pixels stay blank.
pub fn confusion(title: &str, classes: &[String], counts: &[u64]) -> Result<Vec<u8>> {
    let k = classes.len();
    let cell = 40i32;
    let (left, top) = (150i32, 60i32);
    let (w, h) = (left + cell * k as i32 + 20, top + cell * k as i32 + 50);
    render(w as u32, h as u32, |a| {
        a.fill(&WHITE)?;
        let font = (FAMILY, 14).into_font();
        a.draw_text(title, &(FAMILY, 16).into_font().color(&BLACK), (10, 8))?;
        a.draw_text(
            "rows: reference, columns: predicted (share of the row)",
            &font.color(&BLACK),
            (10, 30),
        )?;
        for i in 0..k {
            let label = format!("{} {}", i + 1, classes[i]);
            let y = top + cell * i as i32 + cell / 2 - 7;
            a.draw_text(&label, &font.color(&BLACK), (8, y))?;
            let x = left + cell * i as i32 + cell / 2 - 6;
            a.draw_text(
                &(i + 1).to_string(),
                &font.color(&BLACK),
                (x, top + cell * k as i32 + 6),
            )?;
            let n: u64 = counts[i * k..(i + 1) * k].iter().sum();
            for j in 0..k {
                let (x0, y0) = (left + cell * j as i32, top + cell * i as i32);
                let share = (n > 0).then(|| counts[i * k + j] as f64 / n as f64);
                draw_cell(a, (x0, y0), cell, share)?;
            }
        }
        Ok(())
    })
}

fn draw_cell(a: &Area, (x0, y0): (i32, i32), cell: i32, share: Option<f64>) -> Drawn {
    let fill = match share {
        Some(s) => {
            let t = s.clamp(0.0, 1.0);
            let mix = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
            RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
        }
        None => RGBColor(230, 230, 230),
    };
    a.draw(&Rectangle::new(
        [(x0, y0), (x0 + cell, y0 + cell)],
        fill.filled(),
    ))?;
    a.draw(&Rectangle::new(
        [(x0, y0), (x0 + cell, y0 + cell)],
        RGBColor(200, 200, 200),
    ))?;
    if let Some(s) = share {
        let color = if s > 0.5 { WHITE } else { BLACK };
        let text = format!("{:.2}", s);
        let font = (FAMILY, 12).into_font().color(&color);
        a.draw_text(&text, &font, (x0 + 6, y0 + cell / 2 - 6))?;
    }
    Ok(())
}

/// Axis ranges and labels of a line chart.
pub struct Axes<'a> {
    /// Title.
    pub title: &'a str,
    /// X axis label.
    pub x: &'a str,
    /// Y axis label.
    pub y: &'a str,
    /// X range.
    pub x_range: (f64, f64),
    /// Y range.
    pub y_range: (f64, f64),
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Draw the diagonal y = x (a perfectly calibrated model).
    pub diagonal: bool,
}

/// A chart of named lines; `bands` gives each series an optional (x, low, high) spread drawn
/// as vertical bars.
pub fn lines(axes: &Axes, series: &[Series], bands: &[Vec<(f64, f64, f64)>]) -> Result<Vec<u8>> {
    render(LINE_WIDTH, 420, |a| {
        a.fill(&WHITE)?;
        let (a, key) = a.split_horizontally(LINE_WIDTH - KEY_WIDTH);
        legend(&key, series)?;
        let a = &a;
        if axes.log_x {
            let (lo, hi) = axes.x_range;
            let mut ch = builder(a, axes)
                .build_cartesian_2d((lo..hi).log_scale(), axes.y_range.0..axes.y_range.1)?;
            ch.configure_mesh().x_desc(axes.x).y_desc(axes.y).draw()?;
            draw_lines(&mut ch, axes, series, bands)
        } else {
            let mut ch = builder(a, axes).build_cartesian_2d(
                axes.x_range.0..axes.x_range.1,
                axes.y_range.0..axes.y_range.1,
            )?;
            ch.configure_mesh().x_desc(axes.x).y_desc(axes.y).draw()?;
            draw_lines(&mut ch, axes, series, bands)
        }
    })
}

fn builder<'a, 'b>(a: &'a Area<'b>, axes: &Axes) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut b = ChartBuilder::on(a);
    b.caption(axes.title, (FAMILY, 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(54);
    b
}

fn draw_lines<'a, X>(
    ch: &mut ChartContext<
        'a,
        BitMapBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    axes: &Axes,
    series: &[Series],
    bands: &[Vec<(f64, f64, f64)>],
) -> Drawn
where
    X: Ranged<ValueType = f64>,
{
    if axes.diagonal {
        let (lo, hi) = axes.x_range;
        ch.draw_series(LineSeries::new(vec![(lo, lo), (hi, hi)], BLACK.mix(0.4)))?;
    }
    for (i, (_, pts)) in series.iter().enumerate() {
        let c = series_color(i);
        // Beyond the palette's ten colours a line is dashed (then dotted) with another marker,
        // so two series never look alike.
        match i / 10 % 3 {
            0 => {
                ch.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
                ch.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            1 => {
                ch.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))?;
                ch.draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 5, c.filled())))?;
            }
            _ => {
                ch.draw_series(DashedLineSeries::new(pts.clone(), 2, 4, c.stroke_width(2)))?;
                ch.draw_series(pts.iter().map(|&p| Cross::new(p, 4, c.stroke_width(2))))?;
            }
        }
        if let Some(b) = bands.get(i) {
            ch.draw_series(
                b.iter().map(|&(x, lo, hi)| {
                    PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(1))
                }),
            )?;
        }
    }
    Ok(())
}

/// Width of a line chart, and of its key (beside the plot, so it never hides a curve).
const LINE_WIDTH: u32 = 780;
const KEY_WIDTH: u32 = 160;

fn legend(a: &Area, series: &[Series]) -> Drawn {
    let font = (FAMILY, 13).into_font().color(&BLACK);
    for (i, (name, _)) in series.iter().enumerate() {
        let y = 40 + 20 * i as i32;
        let c = series_color(i);
        let seg = vec![(4, y), (26, y)];
        match i / 10 % 3 {
            0 => {
                a.draw(&PathElement::new(seg, c.stroke_width(3)))?;
                a.draw(&Circle::new((15, y), 3, c.filled()))?;
            }
            1 => {
                a.draw(&plotters::element::DashedPathElement::new(
                    seg,
                    6,
                    3,
                    c.stroke_width(3),
                ))?;
                a.draw(&TriangleMarker::new((15, y), 5, c.filled()))?;
            }
            _ => {
                a.draw(&plotters::element::DashedPathElement::new(
                    seg,
                    2,
                    3,
                    c.stroke_width(3),
                ))?;
                a.draw(&Cross::new((15, y), 4, c.stroke_width(2)))?;
            }
        }
        a.draw_text(name, &font, (32, y - 7))?;
    }
    Ok(())
}

/// Reliability diagram: accuracy against mean confidence per confidence bin, per method.
pub fn reliability(title: &str, series: &[Series]) -> Result<Vec<u8>> {
    let axes = Axes {
        title,
        x: "mean confidence of the bin",
        y: "accuracy",
        x_range: (0.0, 1.0),
        y_range: (0.0, 1.0),
        log_x: false,
        diagonal: true,
    };
    lines(&axes, series, &[])
}

/// Risk-coverage: accuracy of the pixels kept when the most uncertain are dropped.
pub fn risk_coverage(title: &str, series: &[Series]) -> Result<Vec<u8>> {
    let lo = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::min);
    let axes = Axes {
        title,
        x: "coverage (share of pixels kept, least uncertain first)",
        y: "accuracy of the kept pixels",
        x_range: (0.0, 1.0),
        y_range: (((lo - 0.05).max(0.0) * 20.0).floor() / 20.0, 1.0),
        log_x: false,
        diagonal: false,
    };
    lines(&axes, series, &[])
}

/// One row per item `(label, value, low, high)`: the value as a dot and its interval as a
/// whisker on a shared 0..1 axis zoomed to the data, labels on the left.
pub fn intervals(title: &str, x_label: &str, rows: &[(String, f64, f64, f64)]) -> Result<Vec<u8>> {
    let lo = rows.iter().map(|r| r.2).fold(1f64, f64::min);
    let hi = rows.iter().map(|r| r.3).fold(0f64, f64::max);
    let (x0, x1) = (
        ((lo - 0.02).max(0.0) * 50.0).floor() / 50.0,
        ((hi + 0.02).min(1.0) * 50.0).ceil() / 50.0,
    );
    let (x0, x1) = if x1 > x0 { (x0, x1) } else { (0.0, 1.0) };
    let n = rows.len();
    let height = 90 + 24 * n as u32;
    render(LINE_WIDTH + 120, height, |a| {
        a.fill(&WHITE)?;
        let mut ch = ChartBuilder::on(a)
            .caption(title, (FAMILY, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(300)
            .build_cartesian_2d(x0..x1, (0..n).into_segmented())?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < n => rows[n - 1 - i].0.clone(),
            _ => String::new(),
        };
        ch.configure_mesh()
            .x_desc(x_label)
            .y_labels(n)
            .y_label_formatter(&label)
            .disable_y_mesh()
            .draw()?;
        for (i, (_, v, l, h)) in rows.iter().enumerate() {
            let y = || SegmentValue::CenterOf(n - 1 - i);
            let c = series_color(i % 10);
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(*l, y()), (*h, y())],
                c.stroke_width(2),
            )))?;
            ch.draw_series(std::iter::once(Circle::new((*v, y()), 4, c.filled())))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut r = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn confusion_cells_are_shaded_by_row_share() {
        let classes = vec!["water".to_string(), "forest".to_string()];
        // Row 1: all right (share 1 on the diagonal); row 2: no pixels (grey).
        let png = confusion("t", &classes, &[10, 0, 0, 0]).unwrap();
        let (w, _, rgb) = decode(&png);
        let px = |x: i32, y: i32| {
            let i = (y as usize * w as usize + x as usize) * 3;
            (rgb[i], rgb[i + 1], rgb[i + 2])
        };
        // Corners of cells (away from the text): (0,0) dark blue, (0,1) near white, (1,*) grey.
        assert_eq!(px(150 + 3, 60 + 3), (8, 48, 107));
        assert_eq!(px(150 + 40 + 3, 60 + 3), (247, 251, 255));
        assert_eq!(px(150 + 3, 60 + 40 + 3), (230, 230, 230));
    }

    #[test]
    fn line_charts_draw_each_series() {
        let s = vec![("a".to_string(), vec![(0.1, 0.2), (0.9, 0.8)])];
        let one = reliability("r", &s).unwrap();
        let two = reliability(
            "r",
            &[
                s[0].clone(),
                ("b".to_string(), vec![(0.1, 0.9), (0.9, 0.95)]),
            ],
        )
        .unwrap();
        assert_ne!(one, two);
        let (w, h, _) = decode(&two);
        assert_eq!((w, h), (780, 420));
        let axes = Axes {
            title: "curve",
            x: "pixels",
            y: "mIoU",
            x_range: (10.0, 1e5),
            y_range: (0.0, 1.0),
            log_x: true,
            diagonal: false,
        };
        let lc = lines(
            &axes,
            &s.iter()
                .map(|(n, _)| (n.clone(), vec![(100.0, 0.3), (1e4, 0.7)]))
                .collect::<Vec<_>>(),
            &[vec![(100.0, 0.2, 0.4)]],
        )
        .unwrap();
        assert!(lc.len() > 1000);
    }

    #[test]
    fn a_line_beyond_the_palette_differs_from_the_one_sharing_its_colour() {
        // Series 0 and 10 share a colour; the second is dashed with triangles.
        let pts = vec![(0.1, 0.5), (0.9, 0.5)];
        let mk = |k: usize| -> Vec<Series> {
            (0..=k)
                .map(|i| (format!("m{i}"), if i == k { pts.clone() } else { vec![] }))
                .collect()
        };
        assert_ne!(
            reliability("r", &mk(0)).unwrap(),
            reliability("r", &mk(10)).unwrap()
        );
    }

    #[test]
    fn intervals_draw_one_row_per_item() {
        let rows = vec![
            ("a".to_string(), 0.9, 0.85, 0.95),
            ("b".to_string(), 0.8, 0.7, 0.9),
        ];
        let png = intervals("OA", "OA", &rows).unwrap();
        let (w, h, _) = decode(&png);
        assert_eq!((w, h), (900, 90 + 48));
        assert_ne!(png, intervals("OA", "OA", &rows[..1]).unwrap());
    }
}
