//! The seeded random number generator behind every random draw.
//!
//! xoshiro256++ seeded through SplitMix64, written out here rather than taken
//! from `rand`: the simulator's output must stay identical for a given seed
//! across dependency upgrades, and `rand` does not promise stable streams.

/// A small, fast, deterministic generator (xoshiro256++).
#[derive(Debug, Clone)]
pub(crate) struct SimRng {
    s: [u64; 4],
}

impl SimRng {
    /// A generator whose whole stream is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[a, b)`.
    pub(crate) fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f64()
    }

    /// True with probability `p`; draws nothing when `p <= 0`, so a zero rate
    /// leaves the stream untouched.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.f64() * n as f64) as usize).min(n - 1)
    }

    /// Standard normal, by Box–Muller (one of the pair is discarded, which keeps
    /// the generator free of hidden state).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // (0, 1]: ln is finite
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with the given rate (mean `1 / rate`), `rate > 0`.
    pub(crate) fn exp(&mut self, rate: f64) -> f64 {
        -(1.0 - self.f64()).ln() / rate
    }

    /// Poisson with mean `lambda` (Knuth's method, in chunks so that `exp(-lambda)`
    /// never underflows).
    pub(crate) fn poisson(&mut self, lambda: f64) -> u32 {
        let mut n = 0;
        let mut rest = lambda;
        while rest > 0.0 {
            let l = rest.min(30.0);
            rest -= l;
            let limit = (-l).exp();
            let mut p = self.f64();
            while p > limit {
                n += 1;
                p *= self.f64();
            }
        }
        n
    }

    /// Index drawn with probability proportional to `weights` (not all zero).
    pub(crate) fn weighted(&mut self, weights: impl Iterator<Item = f64> + Clone) -> usize {
        let total: f64 = weights.clone().sum();
        let mut x = self.f64() * total;
        let mut last = 0;
        for (i, w) in weights.enumerate() {
            if w > 0.0 {
                last = i;
                if x < w {
                    return i;
                }
                x -= w;
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let (mut a, mut b, mut c) = (SimRng::new(7), SimRng::new(7), SimRng::new(8));
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn moments_of_the_distributions() {
        let mut r = SimRng::new(1);
        let n = 200_000;
        let normals: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        let exp_mean = (0..n).map(|_| r.exp(4.0)).sum::<f64>() / n as f64;
        assert!((exp_mean - 0.25).abs() < 0.005, "{exp_mean}");
        for lambda in [0.3, 5.0, 75.0] {
            let m = (0..20_000).map(|_| r.poisson(lambda) as f64).sum::<f64>() / 20_000.0;
            assert!((m - lambda).abs() < 0.03 * lambda.max(1.0), "{lambda}: {m}");
        }
        let mut hist = [0u32; 3];
        for _ in 0..30_000 {
            hist[r.weighted([1.0, 0.0, 2.0].into_iter())] += 1;
        }
        assert_eq!(hist[1], 0);
        assert!((hist[2] as f64 / hist[0] as f64 - 2.0).abs() < 0.1, "{hist:?}");
    }
}
