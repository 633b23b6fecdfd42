//! Copies of an image made the ways films get copied into a dataset twice: turned a few degrees,
//! cropped, re-encoded as JPEG, re-exposed, mirrored and turned, shrunk and enlarged again. The
//! embedding detector calibrates its threshold on such copies of the dataset's own images, so it
//! knows how alike a copy looks before it calls two images copies.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{GrayImage, ImageReader};

use super::augment::Draw;
use crate::util::rng::Rng;

/// The edits, in the order [`copy`] cycles through them.
pub const EDITS: [&str; 6] = [
    "turned 2-10 degrees",
    "cropped to 80-95%",
    "re-encoded as JPEG at quality 50-90",
    "re-exposed (brightness and contrast)",
    "mirrored and turned 2-6 degrees",
    "shrunk 1.5-3 times and enlarged again",
];

/// Copy `n` of `image`: edit `n % EDITS.len()` with amounts drawn from `rng`.
pub fn copy(image: &GrayImage, n: usize, rng: &mut Rng) -> GrayImage {
    let turn = |rng: &mut Rng, low: f64, high: f64| {
        rng.range(low, high) * if rng.chance(0.5) { 1.0 } else { -1.0 }
    };
    let plain = Draw::IDENTITY;
    match n % EDITS.len() {
        0 => Draw {
            rotation: turn(rng, 2.0, 10.0),
            ..plain
        }
        .apply(image),
        1 => Draw {
            zoom: rng.range(1.05, 1.25),
            ..plain
        }
        .apply(image),
        2 => reencoded(image, rng.range(50.0, 90.0) as u8),
        3 => Draw {
            brightness: rng.range(-0.08, 0.08),
            contrast: rng.range(0.85, 1.15),
            ..plain
        }
        .apply(image),
        4 => Draw {
            rotation: turn(rng, 2.0, 6.0),
            hflip: true,
            ..plain
        }
        .apply(image),
        _ => {
            let (w, h) = image.dimensions();
            let factor = rng.range(1.5, 3.0);
            let small = imageops::resize(
                image,
                ((f64::from(w) / factor) as u32).max(1),
                ((f64::from(h) / factor) as u32).max(1),
                FilterType::Triangle,
            );
            imageops::resize(&small, w, h, FilterType::Triangle)
        }
    }
}

/// `image` written as a JPEG at `quality` and read back.
fn reencoded(image: &GrayImage, quality: u8) -> GrayImage {
    let mut bytes = Vec::new();
    let written = JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(image);
    let read = written.ok().and_then(|()| {
        ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .ok()?
            .decode()
            .ok()
    });
    // Encoding a grey image in memory cannot fail; were it to, the copy is the image itself.
    read.map_or_else(|| image.clone(), |decoded| decoded.to_luma8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edit_changes_the_image_but_keeps_its_size() {
        let image = GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 4 + y * 3) % 256) as u8]));
        for (n, edit) in EDITS.iter().enumerate() {
            let copy = copy(&image, n, &mut Rng::new(n as u64));
            assert_eq!(copy.dimensions(), (64, 48), "{edit}");
            assert_ne!(copy, image, "{edit}");
        }
    }
}
