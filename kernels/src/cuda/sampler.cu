// One sampler step of many scenes at once, with classifier-free guidance: the arithmetic of
// `Solver::advance` (sampler.rs) and the guidance combine of `Model::step` (scene.rs), per
// element. Coefficients are computed per scene on the host in f64 (cuda/sampler.rs) and
// passed as `PARAMS` floats per scene. Every operation is an explicitly rounded intrinsic,
// so nothing is contracted into an FMA and the result is bit-identical to the host's f32
// arithmetic.

typedef unsigned long long u64;

// Layout of one scene's parameters (cuda/sampler.rs writes them in this order).
#define PARAMS 11
#define P_GUIDANCE 0
#define P_PREDICTION 1  // 0: x0, 1: v
#define P_MODE 2        // 0: DDIM (or the last step), 1: DPM-Solver++ first order, 2: second order
#define P_A 3
#define P_S 4
#define P_AN 5
#define P_SN 6
#define P_ZF 7
#define P_DF 8
#define P_C0 9
#define P_C1 10

// z [scenes, len] and prev_x0 [scenes, len] are updated in place; out [2 * scenes, len] is the
// denoiser output, conditional rows first, then the unconditional ones in the same order.
extern "C" __global__ void guided_step(float* z, float* prev_x0, const float* out, const float* params, u64 scenes, u64 len) {
    u64 n = scenes * len;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        const float* p = params + (i / len) * PARAMS;
        float c = out[i], u = out[n + i];
        float o = __fadd_rn(u, __fmul_rn(p[P_GUIDANCE], __fsub_rn(c, u)));
        float zi = z[i];
        bool v_pred = p[P_PREDICTION] != 0.0f;
        int mode = (int)p[P_MODE];
        float a = p[P_A], s = p[P_S];
        float x0 = v_pred ? __fsub_rn(__fmul_rn(a, zi), __fmul_rn(s, o)) : o;
        float zn;
        if (mode == 0) {
            float eps = v_pred ? __fadd_rn(__fmul_rn(s, zi), __fmul_rn(a, o))
                               : __fdiv_rn(__fsub_rn(zi, __fmul_rn(a, x0)), s);
            zn = __fadd_rn(__fmul_rn(p[P_AN], x0), __fmul_rn(p[P_SN], eps));
        } else {
            float d = mode == 1 ? x0 : __fsub_rn(__fmul_rn(p[P_C0], x0), __fmul_rn(p[P_C1], prev_x0[i]));
            zn = __fsub_rn(__fmul_rn(p[P_ZF], zi), __fmul_rn(p[P_DF], d));
        }
        z[i] = zn;
        prev_x0[i] = x0;
    }
}
