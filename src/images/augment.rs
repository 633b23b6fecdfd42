//! Seeded data augmentation on grey images at the model's input size: rotation, horizontal and vertical
//! flips, zoom (crop in or shrink out), brightness and contrast, each drawn from ranges in the policy.
//!
//! The random draws for one image come from `Rng::derive(seed, "augment", epoch, index)`, where `index`
//! is the image's place among the training rows of the split table, so an augmented batch depends only on
//! the seed, the epoch and that place: the train stage applies the policy per epoch, and the augment
//! stage's materialised copies use the same function with epochs from [`COPY_STREAM`] up. Pixels outside
//! the source are filled by reflection, as Keras does.

use image::{GrayImage, Luma};
use serde::{Deserialize, Serialize};

use crate::util::rng::Rng;

/// Materialised copy k draws as epoch `COPY_STREAM + k`, so it never repeats a training epoch's draw.
pub const COPY_STREAM: u64 = 1 << 32;

/// Ranges for each transform; zero turns a transform off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Largest rotation either way, in degrees.
    pub rotation: f64,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// Mirror top-bottom with probability 1/2.
    pub vflip: bool,
    /// Largest zoom either way, as a fraction (0.1: 90% to 110%).
    pub zoom: f64,
    /// Largest brightness shift either way, as a fraction of full scale.
    pub brightness: f64,
    /// Largest contrast change either way, as a fraction (0.2: 80% to 120%).
    pub contrast: f64,
}

/// The random draws for one augmented image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Rotation in degrees.
    pub rotation: f64,
    /// Mirrored left-right.
    pub hflip: bool,
    /// Mirrored top-bottom.
    pub vflip: bool,
    /// Zoom factor (above 1 magnifies).
    pub zoom: f64,
    /// Added to every grey level, as a fraction of full scale.
    pub brightness: f64,
    /// Multiplies the distance of every grey level from the image mean.
    pub contrast: f64,
}

impl Policy {
    /// The draws for image `index` in `epoch` (or copy number) under `seed`.
    pub fn draw(&self, seed: u64, epoch: u64, index: u64) -> Draw {
        let mut rng = Rng::derive(seed, "augment", epoch, index);
        // Every draw is taken, used or not, so turning one transform off leaves the others' values alone.
        let (r, h, v, z, b, c) = (
            rng.range(-1.0, 1.0),
            rng.chance(0.5),
            rng.chance(0.5),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
        );
        Draw {
            rotation: r * self.rotation,
            hflip: self.hflip && h,
            vflip: self.vflip && v,
            zoom: 1.0 + z * self.zoom,
            brightness: b * self.brightness,
            contrast: 1.0 + c * self.contrast,
        }
    }

    /// Image `index` augmented for `epoch` under `seed`.
    pub fn apply(&self, image: &GrayImage, seed: u64, epoch: u64, index: u64) -> GrayImage {
        self.draw(seed, epoch, index).apply(image)
    }
}

impl Draw {
    /// No change: the draws to edit one field of, as in `Draw { rotation: 4.0, ..Draw::IDENTITY }`.
    pub const IDENTITY: Draw = Draw {
        rotation: 0.0,
        hflip: false,
        vflip: false,
        zoom: 1.0,
        brightness: 0.0,
        contrast: 1.0,
    };

    /// Applies the draws: geometry first (one resampling), then grey levels.
    pub fn apply(&self, image: &GrayImage) -> GrayImage {
        let (w, h) = image.dimensions();
        let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
        let (sin, cos) = self.rotation.to_radians().sin_cos();
        let mean = image.pixels().map(|p| f64::from(p[0])).sum::<f64>() / f64::from((w * h).max(1));
        GrayImage::from_fn(w, h, |x, y| {
            // Map each output pixel back into the source: undo flips, zoom, then rotation.
            let mut dx = f64::from(x) + 0.5 - cx;
            let mut dy = f64::from(y) + 0.5 - cy;
            if self.hflip {
                dx = -dx;
            }
            if self.vflip {
                dy = -dy;
            }
            let (dx, dy) = (dx / self.zoom, dy / self.zoom);
            let sx = cos * dx + sin * dy + cx - 0.5;
            let sy = -sin * dx + cos * dy + cy - 0.5;
            let value = bilinear(image, sx, sy);
            let value = (value - mean) * self.contrast + mean + self.brightness * 255.0;
            Luma([value.round().clamp(0.0, 255.0) as u8])
        })
    }
}

/// Bilinear sample at (x, y), reflecting coordinates that fall outside.
fn bilinear(image: &GrayImage, x: f64, y: f64) -> f64 {
    let (w, h) = image.dimensions();
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f64, yi: f64| {
        let px = reflect(xi as i64, w);
        let py = reflect(yi as i64, h);
        f64::from(image.get_pixel(px, py)[0])
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Reflects an index into 0..n (..., 1, 0 | 0, 1, ..., n-1 | n-1, ...).
fn reflect(i: i64, n: u32) -> u32 {
    let n = i64::from(n.max(1));
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> GrayImage {
        GrayImage::from_fn(16, 16, |x, y| Luma([(x * 10 + y) as u8]))
    }

    fn off() -> Policy {
        Policy {
            rotation: 0.0,
            hflip: false,
            vflip: false,
            zoom: 0.0,
            brightness: 0.0,
            contrast: 0.0,
        }
    }

    #[test]
    fn identity_policy_keeps_the_image() {
        assert_eq!(off().apply(&ramp(), 1, 0, 0), ramp());
        assert_eq!(Draw::IDENTITY.apply(&ramp()), ramp());
    }

    #[test]
    fn a_flip_mirrors_exactly() {
        let flip = Draw {
            hflip: true,
            ..Draw::IDENTITY
        };
        let out = flip.apply(&ramp());
        assert_eq!(out, image::imageops::flip_horizontal(&ramp()));
    }

    #[test]
    fn draws_are_seeded_and_in_range() {
        let p = Policy {
            rotation: 15.0,
            hflip: true,
            vflip: false,
            zoom: 0.1,
            brightness: 0.1,
            contrast: 0.2,
        };
        assert_eq!(p.apply(&ramp(), 7, 2, 3), p.apply(&ramp(), 7, 2, 3));
        assert_ne!(
            p.draw(7, 2, 3),
            p.draw(7, 3, 3),
            "another epoch, other draws"
        );
        for i in 0..200 {
            let d = p.draw(1, 0, i);
            assert!(d.rotation.abs() <= 15.0 && !d.vflip);
            assert!((0.9..=1.1).contains(&d.zoom) && (0.8..=1.2).contains(&d.contrast));
        }
        let flips = (0..200).filter(|&i| p.draw(1, 0, i).hflip).count();
        assert!((70..130).contains(&flips), "{flips}");
    }

    #[test]
    fn reflection_stays_in_bounds() {
        assert_eq!(
            (-2..6).map(|i| reflect(i, 3)).collect::<Vec<_>>(),
            vec![1, 0, 0, 1, 2, 2, 1, 0]
        );
    }
}
