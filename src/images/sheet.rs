//! Contact sheets: rows of grey images side by side on a dark background, written as one PNG, so a
//! person can look at a dataset or at augmentations at a glance.

use image::{GrayImage, Luma, imageops};

/// Lays out `rows` of images, each scaled to fit a `cell` x `cell` square (aspect kept), with a gap.
pub fn contact_sheet(rows: &[Vec<GrayImage>], cell: u32) -> GrayImage {
    let gap = (cell / 16).max(2);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let width = columns * (cell + gap) + gap;
    let height = rows.len() as u32 * (cell + gap) + gap;
    let mut sheet = GrayImage::from_pixel(width.max(1), height.max(1), Luma([24]));
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            let (w, h) = image.dimensions();
            let scale = f64::from(cell) / f64::from(w.max(h).max(1));
            let (tw, th) = (
                ((f64::from(w) * scale).round() as u32).max(1),
                ((f64::from(h) * scale).round() as u32).max(1),
            );
            let thumb = imageops::resize(image, tw, th, imageops::FilterType::Triangle);
            let x = gap + c as u32 * (cell + gap) + (cell - tw) / 2;
            let y = gap + r as u32 * (cell + gap) + (cell - th) / 2;
            imageops::replace(&mut sheet, &thumb, i64::from(x), i64::from(y));
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_every_image_in_its_cell() {
        let white = GrayImage::from_pixel(10, 20, Luma([255]));
        let sheet = contact_sheet(&[vec![white.clone(), white.clone()], vec![white]], 40);
        let gap = 2;
        assert_eq!(sheet.dimensions(), (2 * 42 + gap, 2 * 42 + gap));
        // Tall image: 20x40 centred in the first cell.
        assert_eq!(sheet.get_pixel(gap + 20, gap + 20)[0], 255);
        assert_eq!(sheet.get_pixel(gap + 1, gap + 20)[0], 24);
        // The second row has one image only.
        assert_eq!(sheet.get_pixel(gap + 42 + 20, gap + 42 + 20)[0], 24);
    }
}
