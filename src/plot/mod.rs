//! PNG figures for the report, drawn in Rust: plotters renders into an RGB buffer (text with
//! the DejaVu Sans font compiled into the binary, so a figure looks the same on every machine
//! and needs no font installed where it runs), `png` encodes it, and the HTML report inlines
//! it as a data URI.
//!
//! - [`charts`]: confusion matrices, reliability diagrams, risk-coverage and learning curves.
//! - [`quicklook`]: class map, confidence and epistemic uncertainty of a product, side by side.

pub mod charts;
pub mod quicklook;

use std::sync::Once;

use base64::Engine as _;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// DejaVu Sans (Debian's fonts-dejavu-core; Bitstream Vera licence), read at build time.
static FONT: &[u8] = include_bytes!("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");

/// Font family name the figures use.
pub const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure here is a build defect.
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            eprintln!("geofuse: the compiled-in font does not parse; figures have no text");
        }
    });
}

/// One figure: a file stem (`<stem>.png`), a caption, and the PNG bytes.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem, plain ASCII.
    pub stem: String,
    /// Caption (a user string: escape it for HTML).
    pub caption: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// The area a chart draws on.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// What a drawing closure returns.
pub type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

/// Renders `draw` on a white `width` x `height` canvas and encodes it as PNG.
pub fn render(width: u32, height: u32, draw: impl FnOnce(&Area) -> Drawn) -> Result<Vec<u8>> {
    render_then(width, height, draw, |_| {})
}

/// [`render`], then `post` edits the RGB pixels (row-major, 3 bytes a pixel) before encoding.
pub fn render_then(
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area) -> Drawn,
    post: impl FnOnce(&mut [u8]),
) -> Result<Vec<u8>> {
    register_font();
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| Error::Internal(format!("drawing a figure: {e}")))?;
        root.present()
            .map_err(|e| Error::Internal(format!("drawing a figure: {e}")))?;
    }
    post(&mut rgb);
    encode_png(&rgb, width, height)
}

/// 8-bit RGB pixels as PNG bytes (deterministic: same pixels, same bytes).
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let fail = |e: png::EncodingError| Error::Internal(format!("encoding a PNG: {e}"));
        let mut w = enc.write_header().map_err(fail)?;
        w.write_image_data(rgb).map_err(fail)?;
    }
    Ok(out)
}

/// The PNG as a `data:` URI for an `<img src>`.
pub fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// Colour of the `i`-th series (Tableau 10, then repeated).
pub fn series_color(i: usize) -> RGBColor {
    const T10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = T10[i % T10.len()];
    RGBColor(r, g, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_and_is_deterministic() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
        let a = encode_png(&rgb, 4, 3).unwrap();
        assert_eq!(a, encode_png(&rgb, 4, 3).unwrap());
        let dec = png::Decoder::new(std::io::Cursor::new(&a));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        assert_eq!(&buf[..info.buffer_size()], &rgb[..]);
        assert!(data_uri(&a).starts_with("data:image/png;base64,iVBORw0KGgo"));
    }

    #[test]
    fn text_is_drawn_with_the_compiled_in_font() {
        let blank = render(120, 40, |a| Ok(a.fill(&WHITE)?)).unwrap();
        let text = render(120, 40, |a| {
            a.fill(&WHITE)?;
            a.draw_text("mIoU 0.9", &(FAMILY, 16).into_font().color(&BLACK), (5, 10))?;
            Ok(())
        })
        .unwrap();
        assert_ne!(blank, text, "text must change the pixels");
    }
}
