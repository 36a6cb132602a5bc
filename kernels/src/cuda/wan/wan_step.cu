// Wan2.1's per-step ops (step.rs launches them): the sinusoidal time embedding, the step
// counter it reads, the SiLU of the time MLP, classifier-free guidance, the scheduler update
// as a linear combination of f32 buffers, and the f32 <-> bf16 casts.
//
// Everything is f32 except where a GEMM reads the result (SiLU's output, the casts' bf16
// side). Where the CPU reference (pipeline.rs, euler.rs, unipc.rs) computes `a + b * c` in
// plain f32, the kernels spell the rounding out with __fmul_rn / __fadd_rn / __fsub_rn so
// that the compiler cannot contract it into an FMA: guidance and the Euler step are then
// bit-identical to the CPU's.



// The sinusoid of transformer.rs's `embed_time` (diffusers' get_timestep_embedding with
// flip_sin_to_cos, shift 0): out[j] = cos(t w_j), out[half + j] = sin(t w_j), w_j =
// exp(log_period * j / half), half = dim / 2, a 0 last when dim is odd; f32 [dim]. The
// timestep is timesteps[*step] (both on the device, so a captured graph replays every step
// unchanged; a counter at or past `count` gives NaNs rather than a read out of bounds);
// log_period = -ln(10000) rounded to f32 by the host. The argument of exp and
// t * w_j are rounded exactly as the CPU's f32 code; exp, cos and sin are evaluated in double
// and rounded once, which matches the host's f32 libm to within its own last-bit error.
// One block; threads stride over j.
extern "C" __global__ void wan_time_embedding(const float* timesteps, u64 count,
                                              const unsigned int* step, float* out, int dim,
                                              float log_period) {
    unsigned int k = *step;
    float t = k < count ? timesteps[k] : __int_as_float(0x7fc00000);
    int half = dim / 2;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float a = __fdiv_rn(__fmul_rn(log_period, (float)j), (float)half);
        float arg = __fmul_rn(t, (float)exp((double)a));
        out[j] = (float)cos((double)arg);
        out[half + j] = (float)sin((double)arg);
    }
    if (threadIdx.x == 0 && (dim & 1)) out[dim - 1] = 0.0f;
}

// *step += 1: the device step counter wan_time_embedding reads, advanced at the end of a
// step. One thread.
extern "C" __global__ void wan_advance_step(unsigned int* step) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *step += 1;
}

// out = bf16(x / (1 + exp(-x))) (umt5.rs's silu) for the time MLP's f32 activations, the bf16
// input of its next GEMM. Grid-stride over n.
extern "C" __global__ void wan_silu_bf16(const float* x, unsigned short* out, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        float v = x[i];
        out[i] = f32_to_bf16(v / (1.0f + expf(-v)));
    }
}

// Classifier-free guidance over the batch of two: pred [2, n] f32 (the prompt's prediction
// first, the negative prompt's second, as pipeline.rs batches them); out[i] = u + g (c - u)
// with c = pred[i], u = pred[n + i], f32 [n], rounded as pipeline.rs (no FMA). Grid-stride
// over n.
extern "C" __global__ void wan_cfg_combine(const float* pred, float* out, float g, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        float c = pred[i], u = pred[n + i];
        out[i] = __fadd_rn(u, __fmul_rn(g, __fsub_rn(c, u)));
    }
}

// The scheduler update: out = beta out + c0 x0 + ... + c_{terms-1} x_{terms-1} (terms <= 4,
// all f32 [n]), accumulated left to right with one rounding per product and per sum (no FMA);
// out is read only when beta != 0 (an uninitialised buffer may hold NaNs), so a step can
// update a buffer in place (x += dt v is beta 1, one term). The x_i must not alias out;
// unused x_i may be any valid pointer. step.rs maps flow-matching Euler and UniPC's x0,
// predictor and corrector onto it. Grid-stride over n.
extern "C" __global__ void wan_combine(float* out, const float* x0, const float* x1,
                                       const float* x2, const float* x3, float beta, float c0,
                                       float c1, float c2, float c3, int terms, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        float acc = beta != 0.0f ? __fmul_rn(beta, out[i]) : 0.0f;
        if (terms > 0) acc = __fadd_rn(acc, __fmul_rn(c0, x0[i]));
        if (terms > 1) acc = __fadd_rn(acc, __fmul_rn(c1, x1[i]));
        if (terms > 2) acc = __fadd_rn(acc, __fmul_rn(c2, x2[i]));
        if (terms > 3) acc = __fadd_rn(acc, __fmul_rn(c3, x3[i]));
        out[i] = acc;
    }
}

// f32 -> bf16 (nearest-even, NaN kept) of a rows x cols matrix: element (r, j) from
// src[src_off + r src_ld + j] to dst[dst_off + r dst_ld + j] (e.g. the v columns of the QKV
// GEMM's f32 output into attention's bf16 v, or a dense vector as 1 row). Grid-stride over
// rows * cols.
extern "C" __global__ void wan_f32_to_bf16(const float* src, u64 src_off, u64 src_ld,
                                           unsigned short* dst, u64 dst_off, u64 dst_ld,
                                           u64 rows, u64 cols) {
    u64 n = rows * cols;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        u64 r = i / cols, j = i % cols;
        dst[dst_off + r * dst_ld + j] = f32_to_bf16(src[src_off + r * src_ld + j]);
    }
}

// bf16 -> f32 (exact: the bf16 bits are the f32's upper half). Grid-stride over n.
extern "C" __global__ void wan_bf16_to_f32(const unsigned short* src, float* dst, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float((unsigned int)src[i] << 16);
}
