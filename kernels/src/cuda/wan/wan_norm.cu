// Wan2.1's memory-bound transformer ops between the GEMMs (norm.rs launches them): the time
// modulation rows, LayerNorm + modulation, the affine LayerNorm of the cross-attention,
// RMSNorm across heads + 3D RoPE, and the patch (un)embedding's layouts. The GEMM epilogues
// (bias, GELU-tanh, gated residual add) are in wan_gemm.cu.
//
// Precision as the reference (transformer.rs, diffusers): the residual stream, statistics,
// modulation and RoPE in f32; what feeds a GEMM or attention is stored as bf16 (the bits, an
// `unsigned short`), rounded once to nearest-even.
//
// Row kernels run one thread block per row, blockDim a multiple of 32 (norm.rs's
// `row_threads`: 32 threads for the tiny model's rows of 28, 256 for rows of 1536), each
// thread striding over the row. Statistics are summed in f32 per thread, then across the
// block in a fixed order (deterministic); means and variances are two-pass (mean first, then
// squared deviations from it), as the CPU's `moments`. A row of 1536 f32 is 6 KiB, so the
// second and third reads of it are served by L1/L2, not DRAM.



// The sum of `v` over the block, the same value in every thread (each adds the per-warp
// partials in warp order). blockDim.x must be a multiple of 32 (full-warp shuffles).
// `scratch` holds 32 floats; the leading barrier lets a second call reuse it safely.
__device__ float block_sum(float v, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warps = blockDim.x >> 5;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < warps; ++w) total += scratch[w];
    return total;
}

// Mean and 1 / sqrt(var + eps) (biased variance) of the `c` floats at `row`, two-pass.
__device__ void row_moments(const float* row, int c, float eps, float* scratch, float* mean_out,
                            float* rstd_out) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < c; i += blockDim.x) s += row[i];
    float mean = block_sum(s, scratch) / (float)c;
    float q = 0.0f;
    for (int i = threadIdx.x; i < c; i += blockDim.x) {
        float d = row[i] - mean;
        q += d * d;
    }
    float var = block_sum(q, scratch) / (float)c;
    *mean_out = mean;
    *rstd_out = 1.0f / sqrtf(var + eps);
}

// Modulation rows: out[b, j] = table[j] + emb[b, j % emb_len] for b < batch, j < len (all
// f32, dense). The blocks: table = scale_shift_table [6C], emb = time_proj's output [B, 6C]
// (emb_len = 6C). The output head: table = its scale_shift_table [2C], emb = temb [B, C]
// (emb_len = C, added to both the shift and the scale row). Grid-stride over batch * len.
extern "C" __global__ void wan_modulation(const float* table, const float* emb, float* out,
                                          u64 len, u64 emb_len, u64 batch) {
    u64 n = batch * len;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        u64 b = i / len, j = i % len;
        out[i] = table[j] + emb[b * emb_len + j % emb_len];
    }
}

// LayerNorm without affine parameters, then time modulation, of the f32 residual stream
// x [rows, c] (dense): out[r, i] = bf16((x - mean) * rstd * (1 + scale[i]) + shift[i]), out
// [rows, c] dense bf16, where shift and scale are rows of item b = r / rows_per_item of the
// f32 modulation buffer: mods + b * mod_stride + shift_off (resp. scale_off). One block per
// row (gridDim.x = rows).
extern "C" __global__ void wan_modulated_layer_norm(const float* x, unsigned short* out,
                                                    const float* mods, u64 mod_stride,
                                                    u64 shift_off, u64 scale_off,
                                                    u64 rows_per_item, int c, float eps) {
    __shared__ float scratch[32];
    u64 row = blockIdx.x;
    const float* xr = x + row * c;
    float mean, rstd;
    row_moments(xr, c, eps, scratch, &mean, &rstd);
    const float* m = mods + (row / rows_per_item) * mod_stride;
    const float* shift = m + shift_off;
    const float* scale = m + scale_off;
    unsigned short* o = out + row * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x)
        o[i] = f32_to_bf16((xr[i] - mean) * rstd * (1.0f + scale[i]) + shift[i]);
}

// LayerNorm with weight and bias (the cross-attention's norm2 when cross_attn_norm) of the
// f32 residual stream x [rows, c] (dense): out[r, i] = bf16((x - mean) * rstd * w[i] + b[i]),
// out [rows, c] dense bf16; w and b f32. One block per row.
extern "C" __global__ void wan_layer_norm_affine(const float* x, unsigned short* out,
                                                 const float* w, const float* b, int c,
                                                 float eps) {
    __shared__ float scratch[32];
    u64 row = blockIdx.x;
    const float* xr = x + row * c;
    float mean, rstd;
    row_moments(xr, c, eps, scratch, &mean, &rstd);
    unsigned short* o = out + row * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x)
        o[i] = f32_to_bf16((xr[i] - mean) * rstd * w[i] + b[i]);
}

// RMSNorm across all heads (`rms_norm_across_heads`), then optionally Wan's 3D RoPE per head,
// of the q or k columns a projection GEMM wrote in f32: row r is the c = heads * head_dim
// floats at x + x_off + r * ldx. y = x * w / sqrt(mean(x^2) + eps) (w f32 [c]); with RoPE,
// each head's interleaved pair (2j, 2j + 1) of token t = r % tokens is rotated by the host's
// tables cos/sin [tokens, head_dim / 2] (f32; rope.rs: the frame/height/width split of the
// head dim lives in the tables): (y0 c - y1 s, y0 s + y1 c). Written as bf16 to out [rows, c],
// dense (attention's [items, tokens, heads, head_dim]). One block per row (gridDim.x = rows),
// each thread owning whole pairs so the rotation needs no exchange; c and head_dim even.
extern "C" __global__ void wan_rms_norm_rope(const float* x, u64 x_off, u64 ldx,
                                             unsigned short* out, const float* w, int c,
                                             int head_dim, float eps, const float* cos_table,
                                             const float* sin_table, u64 tokens, int has_rope) {
    __shared__ float scratch[32];
    u64 row = blockIdx.x;
    const float* xr = x + x_off + row * ldx;
    unsigned short* o = out + row * c;
    int pairs = c / 2;
    float s = 0.0f;
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        float a = xr[2 * p], b = xr[2 * p + 1];
        s += a * a + b * b;
    }
    float inv = 1.0f / sqrtf(block_sum(s, scratch) / (float)c + eps);
    int half = head_dim / 2;
    const float* ct = cos_table + (row % tokens) * half;
    const float* st = sin_table + (row % tokens) * half;
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        float y0 = xr[2 * p] * inv * w[2 * p];
        float y1 = xr[2 * p + 1] * inv * w[2 * p + 1];
        if (has_rope) {
            int j = p % half;
            float cs = ct[j], sn = st[j];
            float r0 = y0 * cs - y1 * sn;
            float r1 = y0 * sn + y1 * cs;
            y0 = r0;
            y1 = r1;
        }
        o[2 * p] = f32_to_bf16(y0);
        o[2 * p + 1] = f32_to_bf16(y1);
    }
}

// Patchify (the input of the patch-embedding GEMM): the f32 latent [c, f, h, w] to bf16 rows
// [tokens, c * pt * ph * pw], token (gf, gh, gw) of the (f / pt, h / ph, w / pw) grid (frame,
// row, column order), value (ci, a, b, e) at column ((ci * pt + a) * ph + b) * pw + e, the
// Conv3d weight's layout. Grid-stride over every output element.
extern "C" __global__ void wan_patchify(const float* latent, unsigned short* out, u64 c, u64 f,
                                        u64 h, u64 w, u64 pt, u64 ph, u64 pw) {
    u64 gh = h / ph, gw = w / pw;
    u64 pv = c * pt * ph * pw;
    u64 n = (f / pt) * gh * gw * pv;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        u64 t = i / pv, col = i % pv;
        u64 tf = t / (gh * gw), th = (t / gw) % gh, tw = t % gw;
        u64 ci = col / (pt * ph * pw), a = (col / (ph * pw)) % pt, b = (col / pw) % ph,
            e = col % pw;
        out[i] = f32_to_bf16(latent[((ci * f + tf * pt + a) * h + th * ph + b) * w + tw * pw + e]);
    }
}

// Unpatchify (after the output head's GEMM): rows y [items * tokens] of f32, ldy apart, each
// token's pt * ph * pw * co values at column ((a * ph + b) * pw + e) * co + ci (channel
// fastest), back to f32 latents out [items, co, f, h, w]. Grid-stride over every output
// element.
extern "C" __global__ void wan_unpatchify(const float* y, u64 ldy, float* out, u64 items,
                                          u64 co, u64 f, u64 h, u64 w, u64 pt, u64 ph,
                                          u64 pw) {
    u64 gh = h / ph, gw = w / pw;
    u64 tokens = (f / pt) * gh * gw;
    u64 per_item = co * f * h * w;
    u64 n = items * per_item;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        u64 item = i / per_item, r = i % per_item;
        u64 ci = r / (f * h * w), fi = (r / (h * w)) % f, hi = (r / w) % h, wi = r % w;
        u64 t = ((fi / pt) * gh + hi / ph) * gw + wi / pw;
        u64 col = (((fi % pt) * ph + hi % ph) * pw + wi % pw) * co + ci;
        out[i] = y[(item * tokens + t) * ldy + col];
    }
}
