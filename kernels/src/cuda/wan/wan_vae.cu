// The Wan2.1 VAE decoder's ops (issue #18), computing what kernels/src/wan/vae.rs,
// vae_blocks.rs and conv3d.rs compute on the CPU, with their layout: frames channels-last,
// `[T, H, W, C]`, a pixel's channels contiguous. bf16 values are `unsigned short` bit patterns.
//
// Precision: the convolutions read bf16 activations and bf16 weights and accumulate in f32 on
// tensor cores (mma.sync m16n8k16), with an f32 bias; the residual stream, norms, softmax
// and every sum outside the tensor cores are f32. Outputs that feed a convolution are written
// as bf16 (round to nearest even, as `half::bf16::from_f32` and PyTorch do).
//
// wan_common.cuh (prepended) has the bf16 conversions and the tensor-core instructions.

typedef unsigned short u16;
typedef unsigned int u32;

// ---------------------------------------------------------------------------------------------
// The causal 3D convolution as an implicit GEMM.
//
// C[m][n] = bias[n] + sum_kk A[m][kk] * B[kk][n], with
//   m  = output pixel of the chunk, (t * H + y) * W + x      (M = T * H * W)
//   n  = output channel                                        (N = Cout)
//   kk = ((dt * k + dy) * k + dx) * Cin + ci                   (K = kt * k * k * Cin)
//   A[m][kk] = stream frame t + dt at (y + dy - k/2, x + dx - k/2), channel ci; zero outside
//              the frame. The stream is the conv's `kt - 1` cached frames, then the chunk's T.
//   B[kk][n] = w[n * K + kk]  (the PyTorch weight [Cout, Cin, kt, k, k] repacked on the host
//              to [Cout, kt, k, k, Cin]: `pack_conv_weight` in vae.rs)
// A is gathered from the two buffers tile by tile (never an im2col in memory). The index
// arithmetic below is mirrored by `mirror::conv_gather` in vae.rs, unit-tested there against a
// direct convolution.

#define BM 64            // output pixels per block
#define BN 64            // output channels per block
#define BK 32            // GEMM columns (kk) per shared-memory tile
#define LDS (BK + 8)     // shared row stride in bf16: 80 bytes keeps 16-byte stores aligned
                         // and the fragment reads of a warp on 32 distinct banks
#define CONV_THREADS 128 // 4 warps, 2 x 2, each a 32 x 32 sub-tile of the 64 x 64 block

// Output pixel m of the chunk as frame t, row y, column x.
__device__ __forceinline__ void decode_row(int m, int height, int width, int* t, int* y, int* x) {
    int hw = height * width;
    *t = m / hw;
    int p = m - *t * hw;
    *y = p / width;
    *x = p - *y * width;
}

// GEMM column kk as time tap dt, spatial taps dy and dx, input channel ci.
__device__ __forceinline__ void decode_col(int kk, int cin, int k, int* dt, int* dy, int* dx, int* ci) {
    int tap = kk / cin;
    *ci = kk - tap * cin;
    int kk2 = k * k;
    *dt = tap / kk2;
    int r = tap - *dt * kk2;
    *dy = r / k;
    *dx = r - *dy * k;
}

// Where A[m][kk] lives: 0 for the zero padding, 1 for element *off of the cache
// ([kt - 1, H, W, Cin]), 2 for element *off of the chunk ([T, H, W, Cin]).
__device__ __forceinline__ int tap_source(int t, int y, int x, int dt, int dy, int dx, int ci,
                                          int height, int width, int cin, int kt, int k,
                                          long long* off) {
    int pad = k >> 1;
    int yy = y + dy - pad;
    int xx = x + dx - pad;
    if (yy < 0 || yy >= height || xx < 0 || xx >= width) return 0;
    int s = t + dt;  // frame of the stream: the cached frames first
    long long pix = (long long)yy * width + xx;
    long long hw = (long long)height * width;
    if (s < kt - 1) {
        *off = ((long long)s * hw + pix) * cin + ci;
        return 1;
    }
    *off = ((long long)(s - (kt - 1)) * hw + pix) * cin + ci;
    return 2;
}

// Columns kk..kk+7 of row (t, y, x) of A, packed two bf16 per word (lower column in the lower
// half). `vec`: Cin is a multiple of 8, so (kk being one too) the 8 columns are 8 consecutive
// channels of one tap, one 16-byte load (aligned: every offset is a multiple of 8 elements).
__device__ __forceinline__ uint4 gather_a8(const u16* __restrict__ x, const u16* __restrict__ cache,
                                           bool row_ok, int t, int y, int xq, int kk, int K,
                                           bool vec, int height, int width, int cin, int kt, int k) {
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (!row_ok) return v;
    int dt, dy, dx, ci;
    long long off;
    if (vec) {
        if (kk < K) {
            decode_col(kk, cin, k, &dt, &dy, &dx, &ci);
            int src = tap_source(t, y, xq, dt, dy, dx, ci, height, width, cin, kt, k, &off);
            if (src != 0) v = *reinterpret_cast<const uint4*>((src == 1 ? cache : x) + off);
        }
        return v;
    }
    u32 h[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        int c = kk + j;
        if (c < K) {
            decode_col(c, cin, k, &dt, &dy, &dx, &ci);
            int src = tap_source(t, y, xq, dt, dy, dx, ci, height, width, cin, kt, k, &off);
            if (src != 0) h[j >> 1] |= ((u32)(src == 1 ? cache : x)[off]) << ((j & 1) * 16);
        }
    }
    return make_uint4(h[0], h[1], h[2], h[3]);
}

// Columns kk..kk+7 of weight row n (output channel n), zeros past K or Cout. `vec`: K is a
// multiple of 8, so the row starts 16-byte aligned and the 8 columns are all in or all out.
__device__ __forceinline__ uint4 load_b8(const u16* __restrict__ w, int n, int kk, int K, int cout, bool vec) {
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (n >= cout) return v;
    const u16* row = w + (long long)n * K;
    if (vec) {
        if (kk < K) v = *reinterpret_cast<const uint4*>(row + kk);
        return v;
    }
    u32 h[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int j = 0; j < 8; ++j)
        if (kk + j < K) h[j >> 1] |= ((u32)row[kk + j]) << ((j & 1) * 16);
    return make_uint4(h[0], h[1], h[2], h[3]);
}


// wan_vae_conv3d: one causal conv over a chunk of T frames (vae_blocks.rs `causal`, and with
// kt = 1 `per_frame` / the upsampler's 2D conv).
//
// Inputs: x bf16 [T, H, W, Cin] (the chunk); cache bf16 [kt - 1, H, W, Cin] (the last frames
// of this conv's input stream, zeros before the first chunk; unused, may be null, when
// kt = 1); w bf16 [Cout, kt, k, k, Cin]; bias f32 [Cout]; residual f32 [T, H, W, Cout] or
// null. Outputs: out f32 [T, H, W, Cout] = conv + bias (+ residual, added after the bias as
// the CPU does); out_bf16, if not null, the same rounded to bf16 (the input of a following
// conv, e.g. the shortcut or the time conv). Spatial zero padding k / 2, any Cin, Cout, H, W.
//
// Mapping: grid (ceil(M / 64), ceil(Cout / 64)), 128 threads. Each block computes a 64 x 64
// tile of C; warp w owns rows (w / 2) * 32.., columns (w % 2) * 32.., as 2 x 4 m16n8 tiles
// (32 f32 accumulators per thread). K advances 32 columns at a time through two shared
// buffers: the next tile is gathered into registers while the tensor cores work on the
// current one, then stored to the other buffer, one __syncthreads per tile. Each thread
// gathers 2 chunks of 8 columns of A and 2 of B per tile (chunk c = tid + 128 i: row c / 4,
// columns (c % 4) * 8..); its 2 rows of A are decoded once.
extern "C" __global__ void wan_vae_conv3d(
    const u16* __restrict__ x, const u16* __restrict__ cache, const u16* __restrict__ w,
    const float* __restrict__ bias, const float* residual, float* out, u16* out_bf16,
    int frames, int height, int width, int cin, int cout, int kt, int k) {
    __shared__ __align__(16) u16 as[2][BM * LDS];
    __shared__ __align__(16) u16 bs[2][BN * LDS];

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int g = lane >> 2;   // mma groupID
    const int tq = lane & 3;   // mma thread in group
    const int M = frames * height * width;
    const int K = kt * k * k * cin;
    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int wm = (warp >> 1) * 32;
    const int wn = (warp & 1) * 32;
    const bool vec_a = (cin & 7) == 0;
    const bool vec_b = (K & 7) == 0;

    int rt[2], ry[2], rx[2];
    bool rok[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        int m = m0 + ((tid + i * CONV_THREADS) >> 2);
        rok[i] = m < M;
        rt[i] = ry[i] = rx[i] = 0;
        if (rok[i]) decode_row(m, height, width, &rt[i], &ry[i], &rx[i]);
    }

    uint4 sa[2], sb[2];
    const int tiles = (K + BK - 1) / BK;

#pragma unroll
    for (int i = 0; i < 2; ++i) {
        int c = tid + i * CONV_THREADS;
        int kk = (c & 3) * 8;
        sa[i] = gather_a8(x, cache, rok[i], rt[i], ry[i], rx[i], kk, K, vec_a, height, width, cin, kt, k);
        sb[i] = load_b8(w, n0 + (c >> 2), kk, K, cout, vec_b);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        int c = tid + i * CONV_THREADS;
        *reinterpret_cast<uint4*>(&as[0][(c >> 2) * LDS + (c & 3) * 8]) = sa[i];
        *reinterpret_cast<uint4*>(&bs[0][(c >> 2) * LDS + (c & 3) * 8]) = sb[i];
    }
    __syncthreads();

    float acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

    for (int kb = 0; kb < tiles; ++kb) {
        const int cur = kb & 1;
        const bool more = kb + 1 < tiles;
        if (more) {
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                int c = tid + i * CONV_THREADS;
                int kk = (kb + 1) * BK + (c & 3) * 8;
                sa[i] = gather_a8(x, cache, rok[i], rt[i], ry[i], rx[i], kk, K, vec_a, height, width, cin, kt, k);
                sb[i] = load_b8(w, n0 + (c >> 2), kk, K, cout, vec_b);
            }
        }
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            u32 af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                // a0: (row g, cols 2tq..), a1: (row g + 8, ..), a2: (row g, cols 2tq + 8..),
                // a3: (row g + 8, cols 2tq + 8..).
                const u16* a = &as[cur][(wm + mi * 16 + g) * LDS + ks + 2 * tq];
                af[mi][0] = *reinterpret_cast<const u32*>(a);
                af[mi][1] = *reinterpret_cast<const u32*>(a + 8 * LDS);
                af[mi][2] = *reinterpret_cast<const u32*>(a + 8);
                af[mi][3] = *reinterpret_cast<const u32*>(a + 8 * LDS + 8);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                // b0: (rows 2tq, 2tq + 1 of K, col g), b1: (rows 2tq + 8, + 9, col g); the
                // tile is stored [n][kk], so each pair is one word.
                const u16* b = &bs[cur][(wn + ni * 8 + g) * LDS + ks + 2 * tq];
                bf[ni][0] = *reinterpret_cast<const u32*>(b);
                bf[ni][1] = *reinterpret_cast<const u32*>(b + 8);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
        }
        if (more) {
            // The other buffer was last read in iteration kb - 1, before its closing barrier.
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                int c = tid + i * CONV_THREADS;
                *reinterpret_cast<uint4*>(&as[cur ^ 1][(c >> 2) * LDS + (c & 3) * 8]) = sa[i];
                *reinterpret_cast<uint4*>(&bs[cur ^ 1][(c >> 2) * LDS + (c & 3) * 8]) = sb[i];
            }
        }
        __syncthreads();
    }

    // c0, c1: (row g, cols 2tq, 2tq + 1); c2, c3: (row g + 8, same cols).
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int hi = 0; hi < 2; ++hi) {
            int m = m0 + wm + mi * 16 + g + hi * 8;
            if (m >= M) continue;
#pragma unroll
            for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    int n = n0 + wn + ni * 8 + 2 * tq + j;
                    if (n >= cout) continue;
                    long long o = (long long)m * cout + n;
                    float v = acc[mi][ni][hi * 2 + j] + bias[n];
                    if (residual != 0) v += residual[o];
                    out[o] = v;
                    if (out_bf16 != 0) out_bf16[o] = f32_to_bf16(v);
                }
        }
}

// wan_vae_cache_update: after a causal conv has read its cache, makes the cache the last
// `keep` = kt - 1 frames of that conv's input stream (the old cache, then the chunk), as
// vae_blocks.rs `causal` does, without leaving the device.
//
// cache bf16 [keep, H, W, Cin], updated in place; x bf16 [frames, H, W, Cin], the chunk the
// conv just read; frame_len = H * W * Cin. Cache frame j becomes stream frame frames + j:
// chunk frame frames + j - keep, or (a chunk shorter than keep) cache frame frames + j, which
// is later than j, so ascending j reads each old frame before it is overwritten; each
// thread owns one element of every frame. Grid-stride over frame_len. Mirrored by
// `mirror::cache_source` in vae.rs.
extern "C" __global__ void wan_vae_cache_update(u16* cache, const u16* __restrict__ x,
                                                int keep, int frames, u64 frame_len) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 e = (u64)blockIdx.x * blockDim.x + threadIdx.x; e < frame_len; e += stride) {
        for (int j = 0; j < keep; ++j) {
            int s = frames + j;
            u16 v = s < keep ? cache[(u64)s * frame_len + e] : x[(u64)(s - keep) * frame_len + e];
            cache[(u64)j * frame_len + e] = v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Norm, resampling, attention, clamp.

// wan_vae_rms_norm: the decoder's RMS norm (vae_blocks.rs `rms_norm`, an L2 normalisation):
// per pixel y = x / max(||x||_2, 1e-12) * sqrt(C) * gamma, then SiLU if `silu`.
//
// x f32 [pixels, C]; gamma f32 [C]; out bf16 [pixels, C] (the next conv's input). The sum of
// squares is f32. One warp per pixel (lanes stride over channels, a shuffle reduction),
// blockDim.x a multiple of 32, grid ceil(pixels / (blockDim.x / 32)).
extern "C" __global__ void wan_vae_rms_norm(const float* __restrict__ x, const float* __restrict__ gamma,
                                            u16* __restrict__ out, u64 pixels, int c, int silu) {
    u64 p = (u64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (p >= pixels) return;  // uniform across the warp
    const float* xp = x + p * c;
    float ss = 0.0f;
    for (int ch = lane; ch < c; ch += 32) {
        float v = xp[ch];
        ss += v * v;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    float norm = fmaxf(sqrtf(ss), 1e-12f);
    float scale = (float)sqrt((double)c);  // the CPU's (c as f64).sqrt() as f32
    for (int ch = lane; ch < c; ch += 32) {
        float y = xp[ch] / norm * scale * gamma[ch];
        if (silu) y = y / (1.0f + expf(-y));
        out[p * c + ch] = f32_to_bf16(y);
    }
}

// wan_vae_upsample: the upsampler's input reshuffle and nearest 2x spatial upsampling
// (vae_blocks.rs `Upsample::forward`), ready for its 3x3 conv.
//
// x f32 [T, h, w, split * C]; out bf16 [T * split, 2h, 2w, C]: out frame t * split + s is
// channels s * C.. of x's frame t (split = 2 after the time conv, whose C-to-2C output frame t
// becomes frames 2t and 2t + 1; split = 1 otherwise), pixel (Y, X) reads (Y / 2, X / 2)
// (nearest-exact at scale 2). One thread per output element, grid-stride. Mirrored by
// `mirror::upsample_source` in vae.rs.
extern "C" __global__ void wan_vae_upsample(const float* __restrict__ x, u16* __restrict__ out,
                                            int frames, int height, int width, int c, int split) {
    u64 ow = 2 * (u64)width, oh = 2 * (u64)height;
    u64 total = (u64)frames * split * oh * ow * c;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 e = (u64)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        u64 ch = e % c;
        u64 r = e / c;
        u64 xo = r % ow;
        r /= ow;
        u64 yo = r % oh;
        u64 f = r / oh;
        u64 t = f / split, s = f % split;
        u64 src = ((t * height + yo / 2) * width + xo / 2) * (split * (u64)c) + s * c + ch;
        out[e] = f32_to_bf16(x[src]);
    }
}

#define ATT_THREADS 128
#define ATT_KEYS 256                       // keys per chunk, their scores in shared memory
#define ATT_MAX_C 512                      // channels: ATT_MAX_C / ATT_THREADS per thread
#define ATT_PER_THREAD (ATT_MAX_C / ATT_THREADS)
#define NEG_INF __int_as_float(0xff800000)  // -infinity, with no math header

__device__ __forceinline__ float block_max(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); ++i) r = fmaxf(r, red[i]);
    __syncthreads();  // red is reused by the next reduction
    return r;
}

__device__ __forceinline__ float block_sum(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); ++i) r += red[i];
    __syncthreads();
    return r;
}

// wan_vae_attention: the mid block's single-head attention within each frame
// (vae_blocks.rs `attend`): out = softmax(q k^T / sqrt(C)) v over the frame's pixels.
//
// qkv f32 [frames, pixels, 3C] (to_qkv's output: each pixel's q | k | v); out bf16
// [frames, pixels, C] (proj's input). All arithmetic f32. A naive kernel (it runs once per
// latent frame, at the latent resolution): one block of 128 threads per (query, frame), grid
// (pixels, frames), streaming over the keys in chunks of 256 with an online softmax: threads
// split a chunk's keys for the scores (each a full dot product over C), then split the
// channels (up to 4 per thread, C <= 512) to accumulate p v; the running max and sum rescale
// the accumulators from chunk to chunk. K and V are read straight from global memory (L2).
extern "C" __global__ void wan_vae_attention(const float* __restrict__ qkv, u16* __restrict__ out,
                                             int pixels, int c) {
    __shared__ float q[ATT_MAX_C];
    __shared__ float p[ATT_KEYS];
    __shared__ float red[ATT_THREADS / 32];

    const int tid = threadIdx.x;
    const int query = blockIdx.x;
    const u64 ld = 3 * (u64)c;
    const float* base = qkv + (u64)blockIdx.y * pixels * ld;
    const float scale = 1.0f / sqrtf((float)c);

    for (int ch = tid; ch < c; ch += ATT_THREADS) q[ch] = base[(u64)query * ld + ch];
    __syncthreads();

    float acc[ATT_PER_THREAD];
#pragma unroll
    for (int i = 0; i < ATT_PER_THREAD; ++i) acc[i] = 0.0f;
    float run_max = NEG_INF;
    float run_sum = 0.0f;

    for (int j0 = 0; j0 < pixels; j0 += ATT_KEYS) {
        const int nk = min(ATT_KEYS, pixels - j0);
        float local_max = NEG_INF;
        for (int j = tid; j < nk; j += ATT_THREADS) {
            const float* key = base + (u64)(j0 + j) * ld + c;
            float s = 0.0f;
            for (int ch = 0; ch < c; ++ch) s += q[ch] * key[ch];
            s *= scale;
            p[j] = s;
            local_max = fmaxf(local_max, s);
        }
        const float new_max = fmaxf(run_max, block_max(local_max, red));
        const float factor = expf(run_max - new_max);  // 0 on the first chunk
        float local_sum = 0.0f;
        for (int j = tid; j < nk; j += ATT_THREADS) {
            float e = expf(p[j] - new_max);
            p[j] = e;
            local_sum += e;
        }
        // block_sum's barrier also publishes every p[j] to the whole block.
        run_sum = run_sum * factor + block_sum(local_sum, red);
        run_max = new_max;
#pragma unroll
        for (int i = 0; i < ATT_PER_THREAD; ++i) {
            const int ch = tid + i * ATT_THREADS;
            if (ch < c) {
                const float* v = base + (u64)j0 * ld + 2 * (u64)c + ch;
                float a = acc[i] * factor;
                for (int j = 0; j < nk; ++j) a += p[j] * v[(u64)j * ld];
                acc[i] = a;
            }
        }
        __syncthreads();  // p is rewritten by the next chunk
    }

    u16* o = out + ((u64)blockIdx.y * pixels + query) * c;
#pragma unroll
    for (int i = 0; i < ATT_PER_THREAD; ++i) {
        const int ch = tid + i * ATT_THREADS;
        if (ch < c) o[ch] = f32_to_bf16(acc[i] / run_sum);
    }
}

// wan_vae_clamp: the decoder's final clamp to [-1, 1], in place on f32 [n]; a NaN stays NaN
// (as Rust's f32::clamp). Grid-stride, one element per thread per step.
extern "C" __global__ void wan_vae_clamp(float* x, u64 n) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = x[i];
        x[i] = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
    }
}
