//! Near-duplicate detection that does not care about rotations by 90 degrees or flips. An image is
//! averaged down to two small square grids: 9x9 for a 64-bit "difference hash" per rotation/flip (each bit:
//! is a cell brighter than its left neighbour), and 16x16 as a finer check, both from one pass that sums
//! pixels over a 144x144 grid. Averaging into a square grid
//! commutes with those 8 transforms, so a rotated copy yields the same hashes in another order. Two images
//! are near duplicates when some transform brings their hashes within a few bits and their fine grids
//! correlate almost perfectly; the second test stops look-alike images (same anatomy, same framing) from
//! chaining into false groups.

use image::GrayImage;

const GRID: usize = 9;
const FINE: usize = 16;
/// The validate stage's default least correlation of the fine grids for a near duplicate.
pub const DEFAULT_MIN_CORRELATION: f32 = 0.96;

/// How alike two images must be to count as near duplicates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearness {
    /// Most differing bits (of 64) between the difference hashes.
    pub max_bits: u32,
    /// Least correlation of the fine grids.
    pub min_correlation: f32,
}

impl Nearness {
    /// Within `max_bits`, at the default correlation.
    pub fn bits(max_bits: u32) -> Nearness {
        Nearness {
            max_bits,
            min_correlation: DEFAULT_MIN_CORRELATION,
        }
    }
}

/// The 8 difference hashes of an image, one per rotation/flip, in a fixed transform order, and its
/// fine grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dhash {
    /// Hash of the image as given, then rotated 90, 180, 270 degrees, then the same for its mirror.
    pub hashes: [u64; 8],
    fine: [[f32; FINE]; FINE],
}

impl Dhash {
    /// Hashes a grey image.
    pub fn of(image: &GrayImage) -> Dhash {
        let cells = CellSums::of(image);
        let grid = cells.grid::<GRID>();
        let mut hashes = [0u64; 8];
        for (t, hash) in hashes.iter_mut().enumerate() {
            *hash = row_differences(&transform(&grid, t));
        }
        Dhash {
            hashes,
            fine: cells.grid::<FINE>(),
        }
    }

    /// Whether `other` is a near duplicate: some rotation or flip of this image is within
    /// `near.max_bits` of it and, so transformed, correlates with it at `near.min_correlation` or more.
    pub fn is_near(&self, other: &Dhash, near: Nearness) -> bool {
        (0..8).any(|t| {
            (self.hashes[t] ^ other.hashes[0]).count_ones() <= near.max_bits
                && correlation(&transform(&self.fine, t), &other.fine) >= near.min_correlation
        })
    }
}

/// Side of the base grid both grids are built from: each is made of whole blocks of it (144 = 9 x 16).
const BASE: usize = GRID * FINE;

/// Pixel sums and counts over a BASE x BASE grid laid over the image, cells by pixel centre,
/// (2x+1)/2w, which is never on a boundary, so mirroring and rotating the image maps cells exactly.
struct CellSums {
    sums: Vec<u64>,
    counts: Vec<u64>,
}

impl CellSums {
    fn of(image: &GrayImage) -> CellSums {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let cell = |i: usize, n: usize| (2 * i + 1) * BASE / (2 * n);
        // Columns of each cell as one contiguous range, so a row adds up whole runs of pixels.
        let mut bounds = vec![w; BASE + 1];
        for x in (0..w).rev() {
            bounds[cell(x, w)] = x;
        }
        for c in (0..BASE).rev() {
            bounds[c] = bounds[c].min(bounds[c + 1]);
        }
        let mut sums = vec![0u64; BASE * BASE];
        let mut rows = [0u64; BASE];
        for (y, row) in image.as_raw().chunks_exact(w.max(1)).enumerate().take(h) {
            let cy = cell(y, h);
            rows[cy] += 1;
            let line = &mut sums[cy * BASE..(cy + 1) * BASE];
            for (c, sum) in line.iter_mut().enumerate() {
                let run = &row[bounds[c]..bounds[c + 1]];
                *sum += u64::from(run.iter().map(|&p| u32::from(p)).sum::<u32>());
            }
        }
        let counts = (0..BASE * BASE)
            .map(|i| rows[i / BASE] * (bounds[i % BASE + 1] - bounds[i % BASE]) as u64)
            .collect();
        CellSums { sums, counts }
    }

    /// The mean grey level of each cell of an N x N grid (N divides BASE).
    fn grid<const N: usize>(&self) -> [[f32; N]; N] {
        let k = BASE / N;
        let mut grid = [[0f32; N]; N];
        for (gy, row) in grid.iter_mut().enumerate() {
            for (gx, value) in row.iter_mut().enumerate() {
                let (mut sum, mut count) = (0u64, 0u64);
                for y in gy * k..(gy + 1) * k {
                    for x in gx * k..(gx + 1) * k {
                        sum += self.sums[y * BASE + x];
                        count += self.counts[y * BASE + x];
                    }
                }
                // Cells of an image under 16 pixels a side may stay empty (0); validate's `min_size`
                // (32 by default) excludes such images before they are compared.
                *value = sum as f32 / count.max(1) as f32;
            }
        }
        grid
    }
}

/// Transform `t` of the grid: bits 0-1 rotate by 90 degrees that many times, bit 2 mirrors first.
fn transform<const N: usize>(grid: &[[f32; N]; N], t: usize) -> [[f32; N]; N] {
    let mut out = [[0f32; N]; N];
    for (y, row) in out.iter_mut().enumerate() {
        for (x, cell) in row.iter_mut().enumerate() {
            // Undo the rotation to find the source cell.
            let (mut sy, mut sx) = (y, x);
            for _ in 0..(t & 3) {
                (sy, sx) = (N - 1 - sx, sy);
            }
            if t & 4 != 0 {
                sx = N - 1 - sx;
            }
            *cell = grid[sy][sx];
        }
    }
    out
}

/// Pearson correlation of two grids (1 when one is a brighter or higher-contrast version of the other).
fn correlation<const N: usize>(a: &[[f32; N]; N], b: &[[f32; N]; N]) -> f32 {
    let n = (N * N) as f32;
    let (a, b) = (a.as_flattened(), b.as_flattened());
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut ab, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    if aa == 0.0 || bb == 0.0 {
        return if aa == bb { 1.0 } else { 0.0 };
    }
    ab / (aa * bb).sqrt()
}

/// 64 bits: for the first 8 rows, whether each of the 8 cells is brighter than the cell to its left.
fn row_differences(grid: &[[f32; GRID]; GRID]) -> u64 {
    let mut bits = 0u64;
    for row in grid.iter().take(8) {
        for c in 0..8 {
            bits = (bits << 1) | u64::from(row[c + 1] > row[c]);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, imageops};

    /// A smooth, asymmetric scene: what photographs and radiographs look like at 9x9.
    fn scene(w: u32, h: u32, seed: u32) -> GrayImage {
        let s = f64::from(seed);
        ImageBuffer::from_fn(w, h, |x, y| {
            let (u, v) = (f64::from(x) / f64::from(w), f64::from(y) / f64::from(h));
            let value = 128.0
                + 60.0 * (u * (3.0 + s) + s).sin() * (v * 2.3 + 0.7 * s).cos()
                + 40.0 * (u * v * 5.0 - s).sin();
            Luma([value.clamp(0.0, 255.0) as u8])
        })
    }

    #[test]
    fn rotations_and_flips_are_the_same_image() {
        let a = scene(120, 80, 1);
        let h = Dhash::of(&a);
        for copy in [
            imageops::rotate90(&a),
            imageops::rotate180(&a),
            imageops::rotate270(&a),
            imageops::flip_horizontal(&a),
            imageops::flip_vertical(&imageops::rotate90(&a)),
        ] {
            let c = Dhash::of(&copy);
            assert!(
                h.is_near(&c, Nearness::bits(0)),
                "an exact rotation or flip matches with 0 differing bits"
            );
        }
    }

    #[test]
    fn resized_copy_is_near_and_other_images_are_far() {
        let a = scene(200, 200, 1);
        let small = imageops::resize(&a, 90, 90, imageops::FilterType::Triangle);
        let h = Dhash::of(&a);
        assert!(h.is_near(&Dhash::of(&small), Nearness::bits(6)));
        let other = Dhash::of(&scene(200, 200, 9));
        assert!(!h.is_near(&other, Nearness::bits(10)));
        assert!(
            !h.is_near(&other, Nearness::bits(64)),
            "the fine grids differ even when hash bits are allowed to"
        );
    }

    #[test]
    fn the_correlation_floor_is_the_callers() {
        let a = scene(200, 200, 1);
        let small = imageops::resize(&a, 90, 90, imageops::FilterType::Triangle);
        let (h, c) = (Dhash::of(&a), Dhash::of(&small));
        let at = |min_correlation| Nearness {
            max_bits: 6,
            min_correlation,
        };
        assert!(h.is_near(&c, at(DEFAULT_MIN_CORRELATION)));
        assert!(
            h.is_near(&h, at(1.0)),
            "an image is its own exact duplicate"
        );
        assert!(
            !h.is_near(&c, at(1.0)),
            "a resized copy is near, but not perfectly correlated"
        );
    }

    #[test]
    fn tiny_images_hash_without_panicking() {
        let one = ImageBuffer::from_pixel(1, 1, Luma([9u8]));
        assert!(Dhash::of(&one).is_near(&Dhash::of(&one), Nearness::bits(0)));
    }
}
