//! The calendar, the market-cap and AUM curves, rounding, names, and the seeded random
//! streams everything is drawn from.

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Date of trading day `day` (day 0 is the Friday before day 1).
pub(super) fn trading_date(day: usize) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid date");
    if day == 0 {
        return start - Duration::days(3);
    }
    let off = (day - 1) as i64;
    start + Duration::days(off / 5 * 7 + off % 5)
}

pub(super) fn back_to_weekday(mut d: NaiveDate) -> NaiveDate {
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d -= Duration::days(1);
    }
    d
}

/// Market cap at rank fraction `q` (0 = largest, 1 = smallest).
pub(super) fn cap_at(q: f64) -> f64 {
    interp_log(CAP_KNOTS, q)
}

/// AUM ($M) of a generated ETF at rank fraction `q`.
pub(super) fn etf_aum_at(q: f64) -> f64 {
    interp_log(
        &[
            (0.0, 50_000.0),
            (0.05, 5_000.0),
            (0.3, 800.0),
            (0.7, 100.0),
            (1.0, 2.0),
        ],
        q,
    )
}

pub(super) fn interp_log(knots: &[(f64, f64)], q: f64) -> f64 {
    let q = q.clamp(0.0, 1.0);
    for w in knots.windows(2) {
        let ((q0, v0), (q1, v1)) = (w[0], w[1]);
        if q <= q1 {
            let t = (q - q0) / (q1 - q0);
            return (v0.ln() + t * (v1.ln() - v0.ln())).exp();
        }
    }
    knots[knots.len() - 1].1
}

pub(super) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// An ASCII company name of exactly `len` characters.
pub(super) fn long_name(len: usize) -> String {
    let mut s = String::from("Consolidated");
    let words = [
        "International",
        "Amalgamated",
        "Universal",
        "Diversified",
        "Holdings",
    ];
    let mut k = 0;
    while s.len() < len {
        s.push(' ');
        s.push_str(words[k % words.len()]);
        k += 1;
    }
    s.truncate(len);
    if s.ends_with(' ') {
        s.pop();
        s.push('X');
    }
    s
}

/// Events per day for a mean rate `m`: Bernoulli below 1, otherwise uniform around `m`.
pub(super) fn count_for(rng: &mut ChaCha8Rng, m: f64) -> usize {
    if m <= 0.0 {
        0
    } else if m < 1.0 {
        usize::from(rng.random_bool(m))
    } else {
        rng.random_range((0.5 * m).floor() as usize..=(1.5 * m).ceil() as usize)
    }
}

pub(super) fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

pub(super) fn pick_weighted_by<T>(
    rng: &mut ChaCha8Rng,
    items: &[T],
    w: impl Fn(&T) -> u32,
) -> usize {
    let weights: Vec<u32> = items.iter().map(w).collect();
    pick_weighted(rng, &weights)
}

pub(super) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(super) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn sub_seed(seed: u64, purpose: u64) -> u64 {
    splitmix64(seed ^ splitmix64(purpose.wrapping_mul(0x2545_F491_4F6C_DD1D)))
}

pub(super) fn rng_for(seed: u64, purpose: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sub_seed(seed, purpose))
}

pub(super) fn mix3(a: u64, b: u64, c: u64) -> u64 {
    splitmix64(
        splitmix64(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            ^ c.wrapping_mul(0xD6E8_FEB8_6659_FD93),
    )
}

/// Cheap stateless noise for per-bar details (open/high/low/volume).
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
