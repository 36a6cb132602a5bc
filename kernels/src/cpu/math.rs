//! Scalar math written so that loops over it vectorise (no branches, no library calls):
//! `exp` by Cephes' expf scheme (range reduction by ln 2, degree-6 polynomial, 2^n built in
//! the exponent bits; within 2 ulp of the correctly rounded value) and SiLU on it. libm's
//! expf is a call per element, which no loop around it can vectorise.

/// 1.5 * 2^23: adding it to |v| < 2^22 rounds v to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// ln 2 split in two so that `n * LN2_HI` is exact for the |n| <= 127 used here.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' expf polynomial for e^r - 1 - r over r^2, |r| <= ln(2) / 2, highest order first.
const POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5, // Cephes: 5.0000001201e-1, which is 0.5 in f32
];

/// e^x for x in [-87, 88] (clamped there: results stay normal and finite).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = POLY.iter().fold(0.0, |acc, &c| acc * r + c);
    let e = p * r * r + r + 1.0;
    // 2^n: n sits in the low bits of `shifted`, so n + 127 shifted into the exponent field.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `x * sigmoid(x)`; below x = -88 (where e^-x is clamped) a denormal-sized value, not 0.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0.0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 1.234e-4;
            let want = (x as f64).exp();
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max((exp(x) as f64 - want).abs() / ulp as f64);
        }
        assert!(worst <= 2.0, "exp is {worst} ulp off");
    }

    #[test]
    fn silu_matches_its_definition() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.05;
            let want = x as f64 / (1.0 + (-x as f64).exp());
            let err = (silu(x) as f64 - want).abs();
            assert!(err <= 4e-7 * want.abs().max(1e-3), "silu({x}) off by {err}");
        }
        assert!(silu(-200.0) <= 0.0 && silu(-200.0) > -1e-30);
        assert_eq!(silu(200.0), 200.0);
    }
}
