//! A small seeded random source (SplitMix64): enough to draw faults and behaviours so that a
//! run with the same seed repeats exactly, without a dependency.

/// One step of SplitMix64.
#[must_use]
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of some bytes.
#[must_use]
pub fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stream of draws.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(1);
        #[allow(clippy::cast_precision_loss)]
        let v = (mix(self.0) >> 11) as f64 / (1u64 << 53) as f64;
        v
    }

    /// Whether an event of probability `p` happens.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

impl Rng {
    /// A whole number in `lo..=hi` (`lo` when the range is empty).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let step = (self.unit() * span as f64) as u64;
        lo + step.min(span - 1)
    }

    /// A draw of the standard normal distribution (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        // 1 - unit is in (0, 1]: its logarithm is finite.
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        radius * angle.cos()
    }

    /// A log-normal draw with this median and spread (the standard deviation of its
    /// logarithm), rounded to a whole number and clamped to `lo..=hi`.
    pub fn log_normal(&mut self, median: f64, sigma: f64, lo: u64, hi: u64) -> u64 {
        let v = median * (sigma * self.normal()).exp();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let v = v.round().clamp(lo as f64, hi as f64) as u64;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_their_ranges_and_repeat() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1_000 {
            let x = a.between(200, 900);
            assert!((200..=900).contains(&x), "{x}");
            assert_eq!(x, b.between(200, 900));
            let y = a.log_normal(700.0, 0.5, 300, 2_500);
            assert!((300..=2_500).contains(&y), "{y}");
            assert_eq!(y, b.log_normal(700.0, 0.5, 300, 2_500));
        }
        assert_eq!(a.between(5, 5), 5);
        assert_eq!(a.between(9, 3), 9);
    }
}
