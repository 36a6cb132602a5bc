//! Counter-based Gaussian noise, bit-identical to `model/noise.py`: Philox4x32-10 (Random123)
//! feeding Box-Muller in f64, rounded to f32. Element `n` of stream `s` under seed `k` comes
//! from block `n / 4` with counter `(n/4 low, n/4 high, s low, 0)` and key `(k low, k high)`,
//! so any scene's noise is reproducible from (seed, stream) alone, on any backend.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox4x32 block with 10 rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = M0 as u64 * c[0] as u64;
        let p1 = M1 as u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// `n` standard normal samples of (`seed`, `stream`). Only the low 32 bits of `stream` count,
/// as in noise.py.
pub fn gaussian(seed: u64, stream: u64, n: usize) -> Vec<f32> {
    let key = [seed as u32, (seed >> 32) as u32];
    let mut out = Vec::with_capacity(n.next_multiple_of(4));
    for block in 0..n.div_ceil(4) as u64 {
        let x = philox4x32_10([block as u32, (block >> 32) as u32, stream as u32, 0], key);
        let u = x.map(|v| (v as f64 + 0.5) / 4_294_967_296.0);
        let r0 = (-2.0 * u[0].ln()).sqrt();
        let r1 = (-2.0 * u[2].ln()).sqrt();
        let a0 = 2.0 * std::f64::consts::PI * u[1];
        let a1 = 2.0 * std::f64::consts::PI * u[3];
        out.extend([r0 * a0.cos(), r0 * a0.sin(), r1 * a1.cos(), r1 * a1.sin()].map(|v| v as f32));
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
        // Random123's kat_vectors for philox4x32_10.
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn streams_and_prefixes() {
        let a = gaussian(7, 0, 10);
        assert_eq!(
            &gaussian(7, 0, 3)[..],
            &a[..3],
            "a shorter draw is a prefix"
        );
        assert_ne!(gaussian(7, 1, 10), a, "streams differ");
        assert_ne!(gaussian(8, 0, 10), a, "seeds differ");
        let big = gaussian(1, 2, 40_000);
        let mean = big.iter().map(|&v| v as f64).sum::<f64>() / big.len() as f64;
        let var = big.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / big.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.03,
            "mean {mean} var {var}"
        );
    }
}
