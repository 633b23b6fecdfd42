//! A small seeded random number generator (SplitMix64), so every random choice pipe makes (synthetic
//! images, splits, augmentation) depends only on the seed in the pipeline's params and never changes with
//! a dependency's version.

/// A SplitMix64 generator: fast, 64 bits of state, good enough statistics for data generation and
/// shuffling (it passes BigCrush).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A generator for one item of a seeded collection, e.g. image `index` of class `stream` of the
    /// synthetic set: the same item gets the same numbers however many other items there are. `purpose`
    /// keeps the streams of different uses of one seed apart.
    pub fn derive(seed: u64, purpose: &str, stream: u64, index: u64) -> Rng {
        // FNV-1a of the purpose.
        let salt = purpose.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        let mut mixer = Rng::new(seed ^ salt ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        let base = mixer.next_u64();
        Rng::new(base ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform float in [low, high).
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// A uniform integer in [0, n); `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// true with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let x = Rng::derive(1, "a", 0, 5).next_u64();
        assert_eq!(x, Rng::derive(1, "a", 0, 5).next_u64());
        assert_ne!(x, Rng::derive(1, "a", 1, 5).next_u64());
        assert_ne!(x, Rng::derive(1, "a", 0, 6).next_u64());
        assert_ne!(x, Rng::derive(1, "b", 0, 5).next_u64());
    }

    #[test]
    fn distributions_are_in_range_and_centred() {
        let mut rng = Rng::new(3);
        let n = 20_000;
        let mean_unit = (0..n).map(|_| rng.unit()).sum::<f64>() / n as f64;
        assert!((mean_unit - 0.5).abs() < 0.01, "{mean_unit}");
        let mean_normal = (0..n).map(|_| rng.normal()).sum::<f64>() / n as f64;
        assert!(mean_normal.abs() < 0.03, "{mean_normal}");
        assert!((0..1000).all(|_| rng.below(3) < 3));
        let mut items: Vec<u32> = (0..50).collect();
        rng.shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(items, sorted);
    }
}
