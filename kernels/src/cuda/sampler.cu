// One sampler step of a batch of scenes on the device: classifier-free guidance combine and
// the DDIM / DPM-Solver++(2M) update of sampler.rs, for every scene at once, so the latents
// need not travel to the host between denoiser passes (CudaBackend::guided_step).
//
// Every operation is an explicitly rounded f32 intrinsic in the order sampler.rs and scene.rs
// write them (no multiply-add contraction), so given the same inputs and coefficients the
// result is the host's, bit for bit.

typedef unsigned long long u64;

// Words per scene in `table` (device_sampler.rs packs them; f32 values as their bits):
// 0 guidance, 1 prediction (0 = x0, 1 = v), 2 update (0 = DDIM, 1 = DPM-Solver++ first order,
// 2 = DPM-Solver++ second order), 3 af, 4 sf (alpha, sigma at t), 5 an, 6 sn (alpha, sigma at
// the next t), 7 zf, 8 df (the DPM-Solver++ factors of z and of the data term), 9 c0, 10 c1
// (the second-order blend of this and the previous x0).
#define STEP_WORDS 11

// z `[scenes, len]` (the latents, updated in place), x0 `[scenes, len]` (in: the previous
// step's x0 estimate, read only by second-order updates; out: this step's), out
// `[2 * scenes, len]` (the denoiser's output: the conditional halves of all scenes, then the
// unconditional ones), table `[scenes, STEP_WORDS]`. Any layout of a scene's `len` values
// works as long as z, x0 and out share it. All f32.
// Grid: (any, scenes); blockIdx.y is the scene, x blocks stride over its values.
extern "C" __global__ void guided_step(float* z, float* x0, const float* out, const unsigned* table, u64 len, u64 scenes) {
    u64 scene = blockIdx.y;
    const unsigned* c = table + scene * STEP_WORDS;
    float g = __uint_as_float(c[0]);
    bool v_pred = c[1] != 0;
    unsigned update = c[2];
    float af = __uint_as_float(c[3]), sf = __uint_as_float(c[4]);
    float an = __uint_as_float(c[5]), sn = __uint_as_float(c[6]);
    float zf = __uint_as_float(c[7]), df = __uint_as_float(c[8]);
    float c0 = __uint_as_float(c[9]), c1 = __uint_as_float(c[10]);
    u64 base = scene * len;
    const float* cond = out + base;
    const float* uncond = out + scenes * len + base;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < len; i += (u64)gridDim.x * blockDim.x) {
        float u = uncond[i];
        // scene.rs: u + g * (c - u).
        float o = __fadd_rn(u, __fmul_rn(g, __fsub_rn(cond[i], u)));
        float zi = z[base + i];
        float x = v_pred ? __fsub_rn(__fmul_rn(af, zi), __fmul_rn(sf, o)) : o;
        float zn;
        if (update == 0) {
            float eps = v_pred ? __fadd_rn(__fmul_rn(sf, zi), __fmul_rn(af, o))
                               : __fdiv_rn(__fsub_rn(zi, __fmul_rn(af, x)), sf);
            zn = __fadd_rn(__fmul_rn(an, x), __fmul_rn(sn, eps));
        } else {
            float d = update == 2 ? __fsub_rn(__fmul_rn(c0, x), __fmul_rn(c1, x0[base + i])) : x;
            zn = __fsub_rn(__fmul_rn(zf, zi), __fmul_rn(df, d));
        }
        z[base + i] = zn;
        x0[base + i] = x;
    }
}
