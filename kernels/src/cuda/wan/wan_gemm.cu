// Wan2.1's linear layers: `out[M, N] = A[M, K] . W[N, K]^T + bias[N]` on bf16 tensor cores
// with f32 accumulation, and an epilogue fused into the store (gemm.rs has the launches).
//
// Operands: A holds bf16 activations, row-major [M, K]; W holds bf16 weights in PyTorch's
// Linear layout [N = out_features, K = in_features]; bias is f32 [N]. Both operands are
// K-contiguous, which is exactly what `mma.sync ... .row.col` wants: A row-major, B = W^T
// "column-major". bf16 values are `unsigned short` bit patterns (wan_common.cuh, prepended).
//
// Tiling: one block of 256 threads (8 warps) per 128 x 128 tile of `out`, K walked in steps
// of 32. The 8 warps form a 2 (rows) x 4 (columns) grid, each owning 64 x 32 outputs: 4 x 4
// mma tiles of 16 x 8, 64 f32 accumulators per thread. Why 128 x 128: Wan's GEMMs are large
// (32,760 x 1,536 x 1,536 to 32,760 x 8,960 x 1,536 per item), and each staged value then
// feeds 128 products instead of the 64 of a 64 x 64 tile, halving global and shared-memory
// traffic per mma; per 16-wide k step a warp issues 6 ldmatrix for 16 mma. The small GEMMs
// (time and text embedders, M <= 512) are a negligible part of a step, so their idle warps
// do not matter.
//
// Shared memory: two stages (double buffer) of a 128 x 32 A tile and a 128 x 32 W tile, each
// row padded from 32 to 40 bf16 (80 bytes), so the 8 row addresses of one ldmatrix phase fall
// on distinct 4-bank groups (80-byte stride: word offsets 0, 20, 8, 28, 16, 4, 24, 12 mod 32).
// 2 x 2 x 128 x 40 x 2 bytes = 40 KiB, static, under the 48 KiB that needs no opt-in.
//
// Loads: when K % 8 == 0 and both operands are 16-byte aligned, each thread issues 16-byte
// `cp.async` copies (zero-filled past M, N or K), so the next K step streams in while the
// tensor cores work on the current one; otherwise (the tiny checkpoint's K = 28, 45, 18...)
// each 8-value chunk is gathered with bounds-checked scalar loads and zero fill. The choice
// is the same for every thread of the grid, so it never splits a warp.
//
// Any M, N and K work: rows and columns of a tile past M or N are computed on zeros and not
// stored; K past its end is zero in both operands, adding nothing.


#define BM 128
#define BN 128
#define BK 32
#define LDS 40
#define THREADS 256








// 8 consecutive values of row `row` of a K-contiguous operand with `rows` rows, from column
// `k`, into shared memory at `dst` (16-byte aligned); zeros past `rows` and past `K`.
__device__ __forceinline__ void load_chunk(bf16_bits* dst, const bf16_bits* src, int row, int rows,
                                           int K, int k, bool vec) {
    bool in_rows = row < rows;
    if (vec) {
        // K % 8 == 0 and k % 8 == 0: the chunk is wholly inside the row or wholly past it.
        bool valid = in_rows && k < K;
        cp_async16(dst, valid ? src + (u64)row * K + k : src, valid ? 16u : 0u);
    } else {
        unsigned w[4];
        #pragma unroll
        for (int e = 0; e < 8; e += 2) {
            unsigned lo = 0, hi = 0;
            if (in_rows && k + e < K) lo = src[(u64)row * K + k + e];
            if (in_rows && k + e + 1 < K) hi = src[(u64)row * K + k + e + 1];
            w[e / 2] = lo | (hi << 16);
        }
        *(uint4*)dst = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

// Stages the K step starting at `k0`: A rows [bm, bm + 128) and W rows [bn, bn + 128), 32
// columns each, as 512 + 512 chunks of 8 values, 2 + 2 per thread.
__device__ __forceinline__ void load_stage(bf16_bits (*sa)[LDS], bf16_bits (*sb)[LDS],
                                           const bf16_bits* A, const bf16_bits* W, int M, int N,
                                           int K, int bm, int bn, int k0, bool vec) {
    #pragma unroll
    for (int i = 0; i < 2; ++i) {
        int c = threadIdx.x + i * THREADS;
        int r = c >> 2, kc = (c & 3) * 8;
        load_chunk(&sa[r][kc], A, bm + r, M, K, k0 + kc, vec);
        load_chunk(&sb[r][kc], W, bn + r, N, K, k0 + kc, vec);
    }
}

// The block's 128 x 128 tile of A . W^T in f32: acc[mi][ni] is the 16 x 8 mma tile at rows
// warp_m * 64 + mi * 16, columns warp_n * 32 + ni * 8 of the block tile, in the mma C layout
// (c0, c1: row g, columns 2t, 2t+1; c2, c3: row g + 8; lane = 4 g + t).
__device__ __forceinline__ void gemm_tile(float acc[4][4][4], const bf16_bits* A,
                                          const bf16_bits* W, int M, int N, int K, int bm, int bn) {
    __shared__ __align__(16) bf16_bits sa[2][BM][LDS];
    __shared__ __align__(16) bf16_bits sb[2][BN][LDS];

    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    bool vec = (K % 8 == 0) && ((((u64)A) | ((u64)W)) & 15) == 0;

    #pragma unroll
    for (int mi = 0; mi < 4; ++mi)
        for (int ni = 0; ni < 4; ++ni)
            for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

    int steps = (K + BK - 1) / BK;
    if (steps > 0) load_stage(sa[0], sb[0], A, W, M, N, K, bm, bn, 0, vec);
    cp_async_commit();
    for (int s = 0; s < steps; ++s) {
        // Stage s + 1 streams in while stage s is multiplied. Its buffer was last read in
        // step s - 1, which ended with a barrier.
        if (s + 1 < steps)
            load_stage(sa[(s + 1) & 1], sb[(s + 1) & 1], A, W, M, N, K, bm, bn, (s + 1) * BK, vec);
        cp_async_commit();
        cp_async_wait<1>();  // every group but the newest (stage s + 1) has landed
        __syncthreads();     // ... for every thread's copies and scalar stores

        bf16_bits (*ta)[LDS] = sa[s & 1];
        bf16_bits (*tb)[LDS] = sb[s & 1];
        #pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned a[4][4], b[4][2];
            // A fragments: lanes 0-15 address rows 0-15 at column kk, lanes 16-31 the same
            // rows at kk + 8, giving a0..a3 = (rows 0-7 | 8-15) x (cols kk.. | kk+8..).
            #pragma unroll
            for (int mi = 0; mi < 4; ++mi)
                ldmatrix_x4(a[mi], &ta[wm + mi * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
            // B fragments from W's rows (= B's columns): matrices (n 0-7, k 0-7), (n 0-7,
            // k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) are b0, b1 of two 8-column tiles.
            #pragma unroll
            for (int np = 0; np < 2; ++np) {
                unsigned r[4];
                ldmatrix_x4(r, &tb[wn + np * 16 + (lane >> 4) * 8 + (lane & 7)]
                                  [kk + ((lane >> 3) & 1) * 8]);
                b[2 * np][0] = r[0];
                b[2 * np][1] = r[1];
                b[2 * np + 1][0] = r[2];
                b[2 * np + 1][1] = r[3];
            }
            #pragma unroll
            for (int mi = 0; mi < 4; ++mi)
                for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
        }
        __syncthreads();  // stage s is free for the load of step s + 1
    }
}

// Calls `store(m, n, value)` for each accumulator of this thread that lies inside [M, N].
template <typename Store>
__device__ __forceinline__ void for_each_output(float acc[4][4][4], int M, int N, int bm, int bn,
                                                Store store) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int g = lane >> 2, t = lane & 3;
    int row0 = bm + (warp >> 2) * 64 + g;
    int col0 = bn + (warp & 3) * 32 + 2 * t;
    #pragma unroll
    for (int mi = 0; mi < 4; ++mi)
        for (int ni = 0; ni < 4; ++ni)
            for (int r = 0; r < 4; ++r) {
                int m = row0 + mi * 16 + (r >> 1) * 8;
                int n = col0 + ni * 8 + (r & 1);
                if (m < M && n < N) store(m, n, acc[mi][ni][r]);
            }
}

// GELU with PyTorch's tanh approximation: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
__device__ __forceinline__ float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// out (f32 [M, N]) = A . W^T + bias. Grid (ceil(N / 128), ceil(M / 128)), 256 threads.
extern "C" __launch_bounds__(THREADS) __global__ void wan_gemm_bias_f32(
    const bf16_bits* A, const bf16_bits* W, const float* bias, float* out, int M, int N,
    int K) {
    int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    float acc[4][4][4];
    gemm_tile(acc, A, W, M, N, K, bm, bn);
    for_each_output(acc, M, N, bm, bn, [&](int m, int n, float v) {
        out[(u64)m * N + n] = v + bias[n];
    });
}

// out (bf16 [M, N]) = bf16(A . W^T + bias), one rounding of the f32 sum. Grid as above.
extern "C" __launch_bounds__(THREADS) __global__ void wan_gemm_bias_bf16(
    const bf16_bits* A, const bf16_bits* W, const float* bias, bf16_bits* out, int M,
    int N, int K) {
    int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    float acc[4][4][4];
    gemm_tile(acc, A, W, M, N, K, bm, bn);
    for_each_output(acc, M, N, bm, bn, [&](int m, int n, float v) {
        out[(u64)m * N + n] = f32_to_bf16(v + bias[n]);
    });
}

// out (bf16 [M, N]) = bf16(gelu_tanh(A . W^T + bias)), the GELU in f32: the first layer of
// Wan's FFN (`GELU(approximate="tanh")`). Grid as above.
extern "C" __launch_bounds__(THREADS) __global__ void wan_gemm_bias_gelu_bf16(
    const bf16_bits* A, const bf16_bits* W, const float* bias, bf16_bits* out, int M,
    int N, int K) {
    int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    float acc[4][4][4];
    gemm_tile(acc, A, W, M, N, K, bm, bn);
    for_each_output(acc, M, N, bm, bn, [&](int m, int n, float v) {
        out[(u64)m * N + n] = f32_to_bf16(gelu_tanh(v + bias[n]));
    });
}

// residual (f32 [M, N]) += gate[b, n] * (A . W^T + bias), b = m / rows_per_batch, gate f32
// with `gate_stride` values between batch items (so a column block of the modulation table
// can be passed in place): Wan's attention output projection and FFN second layer adding
// into the f32 residual stream. Every (m, n) is owned by exactly one thread, so the
// read-modify-write needs no atomics. Grid as above.
extern "C" __launch_bounds__(THREADS) __global__ void wan_gemm_gated_residual(
    const bf16_bits* A, const bf16_bits* W, const float* bias, float* residual,
    const float* gate, int gate_stride, int rows_per_batch, int M, int N, int K) {
    int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    float acc[4][4][4];
    gemm_tile(acc, A, W, M, N, K, bm, bn);
    for_each_output(acc, M, N, bm, bn, [&](int m, int n, float v) {
        float gv = gate[(u64)(m / rows_per_batch) * gate_stride + n];
        residual[(u64)m * N + n] += gv * (v + bias[n]);
    });
}
