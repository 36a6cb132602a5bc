//! Seeded guesses for attributes a prompt leaves open.
//!
//! Each guess hashes (seed, scene index, attribute) with the SplitMix64 finaliser, so a guess
//! depends on nothing else: the same task seed always fills the same holes the same way, and
//! rewording one scene does not reshuffle the guesses of another.

use crate::plan::Attr;

/// SplitMix64's output function: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks one of `options` (non-empty) for attribute `attr` of scene `scene`.
pub fn pick<T: Copy>(options: &[T], seed: u64, scene: usize, attr: Attr) -> T {
    let slot = (scene as u64) << 8 | attr as u64;
    let h = mix(mix(seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_add(slot));
    options[(h % options.len() as u64) as usize]
}
