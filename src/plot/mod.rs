//! Plots as PNG files, drawn with plotters into memory and written with the `image` crate. All text uses
//! the font shipped beside this file (DejaVu Sans, `DejaVuSans.LICENSE`), so no system font is needed,
//! every machine draws the same pixels, and the same inputs give byte-identical files.

pub mod bars;
pub mod classification;
pub mod curves;
pub mod gallery;
pub mod spread;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// The drawing area a chart function draws on.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The font family every text in a plot uses.
pub const FONT: &str = "pipe-sans";

static FONT_BYTES: &[u8] = include_bytes!("DejaVuSans.ttf");

/// One colour per series, distinguishable in colour and in grey (Okabe-Ito).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// Grey for reference lines and annotations.
pub const GREY: RGBColor = RGBColor(110, 110, 110);

/// Draws a chart's legend in `corner`, in the house style.
pub fn legend<'a, 'b>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    corner: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    'b: 'a,
{
    chart
        .configure_series_labels()
        .label_font(text(15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(corner)
        .draw()?;
    Ok(())
}

/// Text of `size` pixels in the shipped font.
pub fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// Draws a `width` x `height` picture with `draw` on a white background and writes it as PNG.
pub fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    render_on(
        path,
        image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255])),
        draw,
    )
}

/// Draws with `draw` on top of `canvas` (e.g. pictures already pasted in) and writes it as PNG.
pub fn render_on(
    path: &Path,
    canvas: image::RgbImage,
    draw: impl FnOnce(&Area) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("the font shipped in src/plot is not a valid font");
        }
    });
    let (width, height) = canvas.dimensions();
    let mut pixels = canvas.into_raw();
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&area)?;
        area.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, pixels).expect("buffer matches the size");
    crate::images::save_png(path, &image)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    /// Checks a rendered PNG: it decodes, has `size`, is not blank.
    pub fn assert_png(path: &Path, size: (u32, u32)) {
        let image = image::open(path).unwrap().to_luma8();
        assert_eq!(image.dimensions(), size, "{}", path.display());
        let n = image.len() as f64;
        let mean = image.pixels().map(|p| f64::from(p[0])).sum::<f64>() / n;
        let variance = image
            .pixels()
            .map(|p| (f64::from(p[0]) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            variance > 100.0,
            "{} looks blank (variance {variance:.1})",
            path.display()
        );
    }
}
