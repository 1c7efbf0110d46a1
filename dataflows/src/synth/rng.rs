//! A small seeded PRNG (SplitMix64) with the distributions the generator needs.
//! Hand-rolled so traces stay identical across dependency upgrades.

/// Deterministic pseudo-random numbers.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x2545_F491_4F6C_DD1D)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponential with the given rate.
    pub fn exp(&mut self, rate: f64) -> f64 {
        -(1.0 - self.unit()).ln() / rate
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Log-normal with median `median` and log-space spread `sigma`: heavy right tail.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Index drawn from cumulative weights `cdf` (ascending, last = total).
    pub fn pick(&mut self, cdf: &[f64]) -> usize {
        let x = self.unit() * cdf.last().copied().unwrap_or(1.0);
        cdf.partition_point(|c| *c <= x).min(cdf.len().saturating_sub(1))
    }
}

/// Cumulative sums of `weights`, for [`Rng::pick`].
pub fn cdf(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    weights
        .into_iter()
        .map(|w| {
            total += w;
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn distributions_have_their_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let mean_exp = (0..n).map(|_| r.exp(4.0)).sum::<f64>() / n as f64;
        assert!((mean_exp - 0.25).abs() < 0.005, "{mean_exp}");
        let picks = (0..n).filter(|_| r.pick(&cdf([1.0, 3.0])) == 1).count() as f64 / n as f64;
        assert!((picks - 0.75).abs() < 0.01, "{picks}");
    }
}
