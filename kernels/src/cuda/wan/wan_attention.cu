// Wan2.1's attention, fused in the manner of FlashAttention-2: `O = softmax(Q K^T / sqrt(D)) V`
// per (batch item, head), without a mask (Wan's self-attention over video tokens and its
// cross-attention over the 512 text rows are both unmasked), never materialising the score
// matrix. attention.rs has the launches.
//
// Layout: Q [B, Lq, H, D], K and V [B, Lk, H, D], O [B, Lq, H, D], all bf16 bit patterns
// (`unsigned short`), i.e. the [B, L, H * D] rows the projection GEMMs write: element
// (b, l, h, d) lies at ((b * L + l) * H + h) * D + d.
//
// Mapping: one block of 4 warps per (64-query tile, head, batch item): blockIdx = (query tile,
// h, b). Warp w owns query rows 16 w .. 16 w + 15 of the tile, its Q fragments held in
// registers for the whole key loop. Keys and values stream through shared memory in tiles of
// 64 rows; per tile each warp computes S = Q K^T (16 x 64) with bf16 mma m16n8k16 into f32,
// updates its rows' running max and sum (online softmax, f32, base 2 with log2(e) folded
// into the scale), rescales its f32 O accumulators, rounds P to bf16 (the A operand of the
// next product, as FlashAttention does) and adds P V (16 x D) with the same mma.
//
// Precision: bf16 inputs and P, f32 scores, statistics and accumulators; O rounded to bf16
// once, after the division by the row sum.
//
// Head dim: the kernels are compiled for padded widths DP = 64 and 128 (any D <= DP): columns
// D .. DP - 1 of every staged tile are zero, adding nothing to Q K^T, and O's are not stored.
// Rows past Lq are computed on zeros and not stored; keys past Lk are zero in shared memory
// and their scores are set to -inf, so they get weight exactly 0.
//
// Pipeline: K and V of a tile are separate cp.async groups, so V of tile j lands while S is
// computed, and K of tile j + 1 while softmax and P V run (its buffer is free once every warp
// has S). When D % 8 == 0 and Q, K, V are 16-byte aligned the copies are 16-byte cp.async
// with zero fill; otherwise (the tiny checkpoint's D = 14) bounds-checked scalar loads stage
// the same tiles (the choice is uniform over the grid).
//
// Shared memory (dynamic, sized by the host): a K tile and a V tile of 64 rows, each row
// padded from DP to DP + 8 bf16, so that the 8 rows one ldmatrix phase reads start on
// distinct 4-bank groups (row strides of 144 and 272 bytes: 36 and 68 words, both 4 mod 32).
// DP = 128: 2 x 64 x 136 x 2 = 34,816 bytes. Q is staged once through the V buffer before V's
// first tile is loaded.


#define BQ 64       // query rows per block: 4 warps x 16
#define BKV 64      // key rows per shared-memory tile
#define THREADS 128
#define NEG_INF __int_as_float(0xff800000)



// As ldmatrix_x4, transposed: register i of lane l receives (rows 2 (l % 4), +1; column
// l / 4) of matrix i, the lower row in the lower half.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const bf16_bits* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}





// Two f32 values as a bf16 pair (nearest-even): `lo` in the lower half.
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}


// Stages rows r0 .. r0 + 63 of head h of item b of a [B, L, H, D] tensor into `dst` (64 rows
// of DP + 8), columns 0 .. DP - 1, zeros past L and past D: DP / 8 chunks of 8 values per
// row, spread over the block's threads.
template <int DP>
__device__ __forceinline__ void load_rows(bf16_bits* dst, const bf16_bits* src, int b, int r0,
                                          int L, int H, int D, int h, bool vec) {
    const int chunks = DP / 8;
    #pragma unroll
    for (int i = 0; i < BKV * chunks / THREADS; ++i) {
        int c = threadIdx.x + i * THREADS;
        int r = c / chunks, d = (c % chunks) * 8;
        int row = r0 + r;
        bool in_rows = row < L;
        u64 base = ((u64)b * L + row) * H * D + (u64)h * D;
        bf16_bits* s = dst + r * (DP + 8) + d;
        if (vec) {
            // D % 8 == 0 and d % 8 == 0: the chunk is wholly inside the row or wholly past it.
            bool valid = in_rows && d < D;
            cp_async16(s, valid ? src + base + d : src, valid ? 16u : 0u);
        } else {
            unsigned w[4];
            #pragma unroll
            for (int e = 0; e < 8; e += 2) {
                unsigned lo = 0, hi = 0;
                if (in_rows && d + e < D) lo = src[base + d + e];
                if (in_rows && d + e + 1 < D) hi = src[base + d + e + 1];
                w[e / 2] = lo | (hi << 16);
            }
            *(uint4*)s = make_uint4(w[0], w[1], w[2], w[3]);
        }
    }
}

template <int DP>
__device__ __forceinline__ void attention_block(const bf16_bits* q, const bf16_bits* k,
                                                const bf16_bits* v, bf16_bits* o, int Lq, int Lk,
                                                int H, int D, float scale_log2) {
    extern __shared__ __align__(16) bf16_bits smem[];
    const int LD = DP + 8;
    bf16_bits* sk = smem;
    bf16_bits* sv = smem + BKV * LD;

    int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int g = lane >> 2, t = lane & 3;
    bool vec = (D % 8 == 0) && ((((u64)q) | ((u64)k) | ((u64)v)) & 15) == 0;

    // Q through the V buffer (its fragments then live in registers), K's first tile beside it.
    load_rows<DP>(sv, q, b, q0, Lq, H, D, h, vec);
    cp_async_commit();
    load_rows<DP>(sk, k, b, 0, Lk, H, D, h, vec);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    // qf[kk]: the A fragment of rows 16 warp .. +15, columns 16 kk .. +15 (lanes 0-15 address
    // rows 0-15 at column 16 kk, lanes 16-31 the same rows at 16 kk + 8).
    unsigned qf[DP / 16][4];
    #pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk)
        ldmatrix_x4(qf[kk], sv + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
    __syncthreads();  // every warp holds its Q: the V buffer is free
    load_rows<DP>(sv, v, b, 0, Lk, H, D, h, vec);
    cp_async_commit();

    // o_acc[dn]: the 16 x 8 C tile of output columns 8 dn .. +7; registers 0, 1 belong to row
    // g (columns 2t, 2t + 1), 2, 3 to row g + 8. Statistics per row half: [0] row g, [1] g + 8.
    float o_acc[DP / 8][4];
    #pragma unroll
    for (int dn = 0; dn < DP / 8; ++dn)
        #pragma unroll
        for (int r = 0; r < 4; ++r) o_acc[dn][r] = 0.0f;
    float row_max[2] = {NEG_INF, NEG_INF};
    float row_sum[2] = {0.0f, 0.0f};  // this thread's columns only; the quad sums at the end

    int tiles = (Lk + BKV - 1) / BKV;
    for (int j = 0; j < tiles; ++j) {
        cp_async_wait<1>();  // K of tile j has landed (V of tile j may be in flight)
        __syncthreads();

        // S = Q K^T for keys 64 j .. +63: s[ni] is the C tile of keys 8 ni .. +7. K's rows are
        // B's columns: matrices (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7),
        // (keys 8-15, d 8-15) give b0, b1 of two 8-key tiles.
        float s[BKV / 8][4];
        #pragma unroll
        for (int ni = 0; ni < BKV / 8; ++ni)
            #pragma unroll
            for (int r = 0; r < 4; ++r) s[ni][r] = 0.0f;
        #pragma unroll
        for (int kk = 0; kk < DP / 16; ++kk)
            #pragma unroll
            for (int np = 0; np < BKV / 16; ++np) {
                unsigned r[4];
                ldmatrix_x4(r, sk + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + kk * 16 +
                                   ((lane >> 3) & 1) * 8);
                mma_bf16(s[2 * np], qf[kk], r[0], r[1]);
                mma_bf16(s[2 * np + 1], qf[kk], r[2], r[3]);
            }
        __syncthreads();  // every warp has its S: the K buffer takes tile j + 1
        if (j + 1 < tiles) load_rows<DP>(sk, k, b, (j + 1) * BKV, Lk, H, D, h, vec);
        cp_async_commit();

        // Online softmax in base 2: x = s * scale * log2(e); p = 2^(x - max).
        int key0 = j * BKV + 2 * t;
        #pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            float mx = NEG_INF;
            #pragma unroll
            for (int ni = 0; ni < BKV / 8; ++ni)
                #pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float x = key0 + ni * 8 + e < Lk ? s[ni][2 * hh + e] * scale_log2 : NEG_INF;
                    s[ni][2 * hh + e] = x;
                    mx = fmaxf(mx, x);
                }
            // The row's other columns are in the 3 lanes sharing g (lane bits 0 and 1).
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            // Finite: tile j holds key 64 j < Lk. exp2(-inf) = 0 on the first tile.
            float new_max = fmaxf(row_max[hh], mx);
            float corr = exp2f(row_max[hh] - new_max);
            row_max[hh] = new_max;
            float sum = 0.0f;
            #pragma unroll
            for (int ni = 0; ni < BKV / 8; ++ni)
                #pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float p = exp2f(s[ni][2 * hh + e] - new_max);
                    s[ni][2 * hh + e] = p;
                    sum += p;
                }
            row_sum[hh] = row_sum[hh] * corr + sum;
            #pragma unroll
            for (int dn = 0; dn < DP / 8; ++dn) {
                o_acc[dn][2 * hh] *= corr;
                o_acc[dn][2 * hh + 1] *= corr;
            }
        }

        cp_async_wait<1>();  // V of tile j has landed (K of tile j + 1 may be in flight)
        __syncthreads();

        // O += P V. P's C tiles 2 kk and 2 kk + 1 (keys 16 kk .. +15) are exactly the A
        // fragment of k-step kk: a0 = row g keys 2t.., a1 = row g + 8, a2, a3 the same 8 keys
        // further. V is [key][d] in shared memory, so its B fragments (keys 2t, 2t + 1 of
        // column g) come from transposed loads: matrices (keys 0-7, d 0-7), (keys 8-15, d
        // 0-7), (keys 0-7, d 8-15), (keys 8-15, d 8-15) give b0, b1 of two 8-column tiles.
        #pragma unroll
        for (int kk = 0; kk < BKV / 16; ++kk) {
            unsigned a[4];
            a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            #pragma unroll
            for (int dp = 0; dp < DP / 16; ++dp) {
                unsigned r[4];
                ldmatrix_x4_trans(r, sv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
                                         dp * 16 + (lane >> 4) * 8);
                mma_bf16(o_acc[2 * dp], a, r[0], r[1]);
                mma_bf16(o_acc[2 * dp + 1], a, r[2], r[3]);
            }
        }
        __syncthreads();  // every warp is done with V: the buffer takes tile j + 1
        if (j + 1 < tiles) load_rows<DP>(sv, v, b, (j + 1) * BKV, Lk, H, D, h, vec);
        cp_async_commit();
    }

    #pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        float sum = row_sum[hh];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        float inv = 1.0f / sum;
        int row = q0 + warp * 16 + g + hh * 8;
        if (row >= Lq) continue;
        bf16_bits* out = o + ((u64)b * Lq + row) * H * D + (u64)h * D;
        #pragma unroll
        for (int dn = 0; dn < DP / 8; ++dn)
            #pragma unroll
            for (int e = 0; e < 2; ++e) {
                int d = dn * 8 + 2 * t + e;
                if (d < D) out[d] = f32_to_bf16(o_acc[dn][2 * hh + e] * inv);
            }
    }
}

// Attention for head dims D <= 64 (the tiny checkpoint's 14). Grid (ceil(Lq / 64), H, B),
// 128 threads, 2 x 64 x 72 x 2 = 18,432 bytes of dynamic shared memory. `scale_log2` =
// log2(e) / sqrt(D).
extern "C" __launch_bounds__(THREADS) __global__ void wan_attention_d64(
    const bf16_bits* q, const bf16_bits* k, const bf16_bits* v, bf16_bits* o, int Lq, int Lk,
    int H, int D, float scale_log2) {
    attention_block<64>(q, k, v, o, Lq, Lk, H, D, scale_log2);
}

// Attention for head dims 64 < D <= 128 (the 1.3B's 128). Grid as above, 128 threads,
// 2 x 64 x 136 x 2 = 34,816 bytes of dynamic shared memory.
extern "C" __launch_bounds__(THREADS) __global__ void wan_attention_d128(
    const bf16_bits* q, const bf16_bits* k, const bf16_bits* v, bf16_bits* o, int Lq, int Lk,
    int H, int D, float scale_log2) {
    attention_block<128>(q, k, v, o, Lq, Lk, H, D, scale_log2);
}
