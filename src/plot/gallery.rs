//! A captioned grid of images (e.g. the test images a model got wrong), each with lines of text under
//! it: true label, predicted label, probability.

use std::path::Path;

use image::{GrayImage, RgbImage, imageops};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{render_on, text};

/// One tile: a picture and the lines under it.
pub struct Tile {
    /// The picture (scaled to fit its cell).
    pub image: GrayImage,
    /// Caption lines.
    pub caption: Vec<String>,
}

const CELL: u32 = 180;
const CAPTION: u32 = 64;
const GAP: u32 = 14;
const HEADER: u32 = 48;

/// Draws up to `columns` tiles per row under `title`.
pub fn grid(path: &Path, title: &str, tiles: &[Tile], columns: usize) -> anyhow::Result<()> {
    let columns = columns.clamp(1, tiles.len().max(1)) as u32;
    let rows = (tiles.len() as u32).div_ceil(columns).max(1);
    let width = columns * (CELL + GAP) + GAP;
    let height = HEADER + rows * (CELL + CAPTION + GAP) + GAP;
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let origin = |i: u32| {
        (
            GAP + (i % columns) * (CELL + GAP),
            HEADER + (i / columns) * (CELL + CAPTION + GAP),
        )
    };
    for (i, tile) in tiles.iter().enumerate() {
        let (w, h) = tile.image.dimensions();
        let scale = f64::from(CELL) / f64::from(w.max(h).max(1));
        let (tw, th) = (
            ((f64::from(w) * scale) as u32).max(1),
            ((f64::from(h) * scale) as u32).max(1),
        );
        let thumb = imageops::resize(&tile.image, tw, th, imageops::FilterType::Triangle);
        let rgb = image::DynamicImage::ImageLuma8(thumb).to_rgb8();
        let (x, y) = origin(i as u32);
        imageops::replace(
            &mut canvas,
            &rgb,
            i64::from(x + (CELL - tw) / 2),
            i64::from(y + (CELL - th) / 2),
        );
    }
    render_on(path, canvas, |area| {
        area.draw_text(
            title,
            &text(22).pos(Pos::new(HPos::Left, VPos::Top)),
            (GAP as i32, 12),
        )?;
        if tiles.is_empty() {
            area.draw_text("none", &text(18), (GAP as i32, HEADER as i32 + 10))?;
        }
        for (i, tile) in tiles.iter().enumerate() {
            let (x, y) = origin(i as u32);
            for (line, caption) in tile.caption.iter().enumerate() {
                area.draw_text(
                    caption,
                    &text(15).pos(Pos::new(HPos::Left, VPos::Top)),
                    (x as i32, (y + CELL + 4 + line as u32 * 19) as i32),
                )?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::assert_png;

    #[test]
    fn tiles_and_captions_render() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let tile = |v: u8| Tile {
            image: GrayImage::from_fn(60, 40, |x, _| image::Luma([v.wrapping_add(x as u8 * 3)])),
            caption: vec![
                "true: fractured".into(),
                "predicted: not fractured".into(),
                "p = 0.31".into(),
            ],
        };
        grid(&path, "Wrong on test", &[tile(10), tile(90), tile(200)], 2).unwrap();
        assert_png(
            &path,
            (
                2 * (CELL + GAP) + GAP,
                HEADER + 2 * (CELL + CAPTION + GAP) + GAP,
            ),
        );
    }
}
