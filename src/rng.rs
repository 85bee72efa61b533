//! Deterministic, position-addressable randomness.
//!
//! Everything random in geofuse (synthetic scenes, sampling, forests) is derived from
//! `hash(seed, ...)` so that results depend only on the seed and the pixel or item index,
//! never on tiling, thread count or iteration order.

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash step.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a seed and up to four coordinates.
#[inline]
pub fn hash4(seed: u64, a: u64, b: u64, c: u64, d: u64) -> u64 {
    hash4_last(hash4_third(hash4_prefix(seed, a, b), c), d)
}

/// The part of [`hash4`] that depends on `seed`, `a` and `b` only: hoisted out of loops over
/// `c` and `d` (`hash4_last(hash4_third(hash4_prefix(s, a, b), c), d) == hash4(s, a, b, c, d)`).
#[inline]
pub fn hash4_prefix(seed: u64, a: u64, b: u64) -> u64 {
    let h = mix64(mix64(seed ^ 0x5EED) ^ a);
    mix64(h ^ b.wrapping_mul(0x9E37_79B9))
}

/// [`hash4`]'s step for `c`, from [`hash4_prefix`].
#[inline]
pub fn hash4_third(prefix: u64, c: u64) -> u64 {
    mix64(prefix ^ c.wrapping_mul(0x85EB_CA6B))
}

/// [`hash4`]'s last step, for `d`, from [`hash4_third`].
#[inline]
pub fn hash4_last(third: u64, d: u64) -> u64 {
    mix64(third ^ d.wrapping_mul(0xC2B2_AE35))
}

/// Uniform in [0, 1) from a hash.
#[inline]
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A small sequential generator (xoshiro256**) seeded through SplitMix64.
/// A standard normal from two uniforms in [0, 1) (Box-Muller).
#[inline]
fn box_muller(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.max(1e-300).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed`; equal seeds give equal streams on every platform.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *v = mix64(x);
        }
        Rng { s }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64();
        let u2 = self.f64();
        box_muller(u1, u2)
    }

    /// `n` draws of [`normal`](Self::normal) as f32, the same values in the same order: the
    /// generator runs serially, the transform on every core.
    pub fn normals_f32(&mut self, n: usize) -> Vec<f32> {
        use rayon::prelude::*;
        let raw: Vec<u64> = (0..2 * n).map(|_| self.next_u64()).collect();
        raw.par_chunks(2)
            .map(|u| box_muller(unit(u[0]), unit(u[1])) as f32)
            .collect()
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang; shape >= 1.
    pub fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.f64();
            if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_normals_are_the_serial_draws() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        let serial: Vec<f32> = (0..10_001).map(|_| a.normal() as f32).collect();
        assert_eq!(b.normals_f32(10_001), serial);
        assert_eq!(
            a.next_u64(),
            b.next_u64(),
            "both generators end in the same state"
        );
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn gamma_mean_matches_shape() {
        let mut r = Rng::new(1);
        let n = 20000;
        let m: f64 = (0..n).map(|_| r.gamma(4.0)).sum::<f64>() / n as f64;
        assert!((m - 4.0).abs() < 0.1, "mean {m}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
