// The 3x3 convolution and the temporal convolution of backend.rs as implicit GEMMs on tensor
// cores (TF32 inputs, f32 accumulation): `out[m, n] = sum_k A[m, k] * B[k, n] + bias[n]`, where
// row m is one output pixel of the channels-last input `[N, H, W, Cin]`, B is the weight
// `[taps, Cin, Cout]` read as `[K = taps * Cin, Cout]`, and A[m, k] (tap `k / Cin`, channel
// `k % Cin`) is the input pixel that tap reads, or 0 in the padding. A is gathered from the
// input into shared memory tile by tile, so the im2col matrix (9x the input) never exists.
//
// - `conv3x3_tf32`: taps are the 3x3 window (tap row, tap column), same padding; writes `out`.
// - `tconv_tf32_residual`: taps are the frames f-1, f, f+1 of the same clip and pixel
//   (`[B * F, H, W, C]`, the clip's F frames consecutive); adds onto `out`, the residual.
//
// Tiling (cuda/conv_tiles.rs mirrors these numbers and the launch geometry):
// a block of 256 threads (8 warps) computes a BM x BN = 64 x 128 tile of `out`, looping over K
// in steps of BK = 16; warp w owns rows (w / 4) * 32 .. +32 and columns (w % 4) * 32 .. +32 of
// the tile, as 2 x 4 `mma.m16n8k8` tiles. Shared memory holds the A and B tiles of two
// K-steps (double buffering, 27 KiB): while the warps multiply one, the next is loaded from
// global memory into registers and stored to the other after the multiply, so one
// __syncthreads per K-step separates the two. Values are rounded to TF32 (cvt.rna: 10-bit
// mantissa, round to nearest, ties away) when stored to shared memory, once per element.
// Grid: (ceil(M / BM), ceil(Cout / BN)); rows and columns past the edge are zeros on load and
// skipped on store, K past taps * Cin is zeros, so any shape is covered.
//
// mma.m16n8k8 .tf32 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8"), g = lane / 4,
// t = lane % 4: A a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); B b0 (k t, n g),
// b1 (k t + 4, n g); C c0 (g, 2t), c1 (g, 2t + 1), c2 (g + 8, 2t), c3 (g + 8, 2t + 1).
//
// TF32 needs sm_80: on older devices the kernels compile to a trap, and the backend refuses
// to select this path there (CudaBackend::with_options).

#define BM 64
#define BN 128
#define BK 16
#define THREADS 256
// Row padding of the shared tiles, in words, chosen so the fragment reads are free of bank
// conflicts: A rows of BK + 4 = 20 words put rows g = 0..7 on disjoint 4-bank groups, B rows
// of BN + 8 = 136 words put k rows t = 0..3 on disjoint 8-bank groups.
#define A_STRIDE (BK + 4)
#define B_STRIDE (BN + 8)
// Rows of the A tile each thread loads (BM rows, 16 threads per row of BK values).
#define A_ROWS (BM * BK / THREADS)
// Columns of the B tile each thread loads (BK rows, 16 threads per row, BN values per row).
#define B_COLS (BK * BN / THREADS)

__device__ __forceinline__ unsigned to_tf32(float v) {
#if __CUDA_ARCH__ >= 800
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return r;
#else
    return __float_as_uint(v);
#endif
}

__device__ __forceinline__ void mma_tf32(float* c, const unsigned* a, const unsigned* b) {
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();
#endif
}

// The implicit GEMM. TEMPORAL picks the taps (see the top of the file) and the epilogue
// (`out +=` instead of `out =`). `outer` and `inner` are the extents the taps move along:
// (H, W) for the 3x3 window, (F, 1) for frames; `stride` is the row distance of one step
// along `outer` (W pixels, or H * W pixels = one frame).
template <bool TEMPORAL>
__device__ void implicit_gemm(const float* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ bias, float* out,
                              int m_total, int outer, int inner, int stride, int cin, int cout) {
    __shared__ unsigned As[2][BM][A_STRIDE];
    __shared__ unsigned Bs[2][BK][B_STRIDE];

    const int taps = TEMPORAL ? 3 : 9;
    const int k_total = taps * cin;
    const int tid = threadIdx.x;
    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;

    // A loader: column kk of the K-step, rows a_row0 + 16 i. Each row's position along the
    // tap axes is found once; (tap, ci) of column kk advance by BK per K-step.
    const int kk = tid % 16;
    const int a_row0 = tid / 16;
    int row_m[A_ROWS], row_o[A_ROWS], row_i[A_ROWS];
#pragma unroll
    for (int i = 0; i < A_ROWS; ++i) {
        int m = m0 + a_row0 + 16 * i;
        row_m[i] = m;
        // Position of pixel m within its image (3x3) or of its frame within its clip.
        int within = TEMPORAL ? (m / stride) % outer : (m % (outer * inner)) / inner;
        row_o[i] = within;
        row_i[i] = TEMPORAL ? 0 : m % inner;
    }
    int tap = kk / cin, ci = kk % cin;

    // B loader: row b_k of the K-step, columns b_n0 + 16 j (16 consecutive threads read 16
    // consecutive floats of one weight row).
    const int b_k = tid / 16;
    const int b_n0 = tid % 16;

    float a_reg[A_ROWS];
    float b_reg[B_COLS];

    // Loads K-step `ks` into registers; advances (tap, ci) to the next K-step afterwards.
    auto load = [&](int ks) {
        bool tap_ok = tap < taps;
        int d_outer = TEMPORAL ? tap - 1 : tap / 3 - 1;
        int d_inner = TEMPORAL ? 0 : tap % 3 - 1;
#pragma unroll
        for (int i = 0; i < A_ROWS; ++i) {
            int o = row_o[i] + d_outer, in = row_i[i] + d_inner;
            bool ok = tap_ok && row_m[i] < m_total && o >= 0 && o < outer && in >= 0 && in < inner;
            long long src = (long long)row_m[i] + (long long)d_outer * stride + d_inner;
            a_reg[i] = ok ? x[src * cin + ci] : 0.0f;
        }
        int k = ks * BK + b_k;
#pragma unroll
        for (int j = 0; j < B_COLS; ++j) {
            int n = n0 + b_n0 + 16 * j;
            b_reg[j] = (k < k_total && n < cout) ? w[(long long)k * cout + n] : 0.0f;
        }
        ci += BK;
        while (ci >= cin) {
            ci -= cin;
            ++tap;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int i = 0; i < A_ROWS; ++i) As[buf][a_row0 + 16 * i][kk] = to_tf32(a_reg[i]);
#pragma unroll
        for (int j = 0; j < B_COLS; ++j) Bs[buf][b_k][b_n0 + 16 * j] = to_tf32(b_reg[j]);
    };

    const int warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;
    const int wm = (warp / 4) * 32, wn = (warp % 4) * 32;
    float acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

    const int steps = (k_total + BK - 1) / BK;
    load(0);
    store(0);
    __syncthreads();
    for (int s = 0; s < steps; ++s) {
        const int buf = s % 2;
        // Issue the next K-step's global loads before multiplying, so their latency overlaps
        // the tensor-core work.
        if (s + 1 < steps) load(s + 1);
#pragma unroll
        for (int k8 = 0; k8 < BK; k8 += 8) {
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                int r = wm + mi * 16 + g;
                a[mi][0] = As[buf][r][k8 + t];
                a[mi][1] = As[buf][r + 8][k8 + t];
                a[mi][2] = As[buf][r][k8 + t + 4];
                a[mi][3] = As[buf][r + 8][k8 + t + 4];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                int c = wn + ni * 8 + g;
                b[ni][0] = Bs[buf][k8 + t][c];
                b[ni][1] = Bs[buf][k8 + t + 4][c];
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_tf32(acc[mi][ni], a[mi], b[ni]);
        }
        // The other buffer was last read in step s - 1, before the barrier that ended it.
        if (s + 1 < steps) store(1 - buf);
        __syncthreads();
    }

#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            int m = m0 + wm + mi * 16 + g + 8 * half;
            if (m >= m_total) continue;
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    int n = n0 + wn + ni * 8 + 2 * t + e;
                    if (n >= cout) continue;
                    float v = acc[mi][ni][2 * half + e] + bias[n];
                    long long o = (long long)m * cout + n;
                    if (TEMPORAL) {
                        out[o] += v;
                    } else {
                        out[o] = v;
                    }
                }
            }
        }
    }
}

// conv2d of backend.rs: x `[N, H, W, Cin]`, w `[3, 3, Cin, Cout]`, bias `[Cout]` -> out
// `[N, H, W, Cout]` (m_total = N * H * W rows), all f32 in memory, TF32 products, f32 sums.
// blockDim = 256, grid = (ceil(m_total / 64), ceil(Cout / 128)).
extern "C" __global__ void conv3x3_tf32(
    const float* x, const float* w, const float* bias, float* out,
    int m_total, int h, int wd, int cin, int cout) {
    implicit_gemm<false>(x, w, bias, out, m_total, h, wd, wd, cin, cout);
}

// temporal_conv_residual of backend.rs: out `[B * F, H, W, Cout]` += tconv(x) + bias with x
// `[B * F, H, W, Cin]`, w `[3, Cin, Cout]` (frame taps f-1, f, f+1; frames outside the clip
// are zeros), bias `[Cout]`; hw = H * W, m_total = B * F * H * W. f32 in memory, TF32 products,
// f32 sums. blockDim = 256, grid = (ceil(m_total / 64), ceil(Cout / 128)).
extern "C" __global__ void tconv_tf32_residual(
    const float* x, const float* w, const float* bias, float* out,
    int m_total, int frames, int hw, int cin, int cout) {
    implicit_gemm<true>(x, w, bias, out, m_total, frames, 1, hw, cin, cout);
}
