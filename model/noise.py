"""Counter-based Gaussian noise (Philox4x32-10 + Box-Muller), bit-identical to `kernels/src/philox.rs`.

Element n of stream s under seed k comes from Philox block n // 4 with counter
(n//4 low, n//4 high, s, 0) and key (k low, k high); its four u32 become uniforms
u = (x + 0.5) / 2^32 and two Box-Muller pairs (computed in f64, then rounded to f32).
"""
import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox_blocks(seed, stream, nblocks):
    c0 = np.arange(nblocks, dtype=np.uint64)
    c = [c0 & MASK, c0 >> np.uint64(32), np.full(nblocks, stream & MASK, np.uint64), np.zeros(nblocks, np.uint64)]
    k0, k1 = np.uint64(seed & MASK), np.uint64((seed >> 32) & MASK)
    for _ in range(10):
        p0 = np.uint64(M0) * c[0]
        p1 = np.uint64(M1) * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(MASK)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(MASK)
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + np.uint64(W0)) & np.uint64(MASK)
        k1 = (k1 + np.uint64(W1)) & np.uint64(MASK)
    return np.stack(c, axis=1).astype(np.uint32)  # [nblocks, 4]


def gaussian(seed, stream, n):
    """n standard normals (float32) of the given seed and stream."""
    blocks = philox_blocks(seed, stream, (n + 3) // 4).astype(np.float64)
    u = (blocks + 0.5) / 4294967296.0
    r0 = np.sqrt(-2.0 * np.log(u[:, 0]))
    r1 = np.sqrt(-2.0 * np.log(u[:, 2]))
    a0 = 2.0 * np.pi * u[:, 1]
    a1 = 2.0 * np.pi * u[:, 3]
    out = np.stack([r0 * np.cos(a0), r0 * np.sin(a0), r1 * np.cos(a1), r1 * np.sin(a1)], axis=1)
    return out.reshape(-1)[:n].astype(np.float32)
