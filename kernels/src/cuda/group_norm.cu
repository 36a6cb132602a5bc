// `norm_silu` of backend.rs: group norm over each image of `[N, H, W, C]` (biased variance,
// then `* gamma + beta`), optionally FiLM (`* (1 + scale) + shift`, per clip), then SiLU: the
// prologue of every conv of net.py in one pass over memory.
//
// One thread block per image, `lanes * C` threads: thread t owns channel `t % C` of pixels
// `t / C`, `t / C + lanes`, ... so a warp reads consecutive floats. Statistics are two-pass
// (mean, then squared deviations) and accumulated in double, as exact as the CPU backend's.
// The host guarantees C <= 1024, C % groups == 0 and blockDim.x == lanes * C.

typedef unsigned long long u64;

#define MAX_THREADS 1024

// Per-group sums of `partial` (one value per thread) into `group_out[groups]`; uses `chan`.
__device__ void group_sums(double* partial, double* chan, double* group_out, int c, int lanes, int groups) {
    int t = threadIdx.x;
    __syncthreads();
    if (t < c) {
        double acc = 0.0;
        for (int l = 0; l < lanes; ++l) acc += partial[l * c + t];
        chan[t] = acc;
    }
    __syncthreads();
    if (t < groups) {
        int per = c / groups;
        double acc = 0.0;
        for (int j = 0; j < per; ++j) acc += chan[t * per + j];
        group_out[t] = acc;
    }
    __syncthreads();
}

extern "C" __global__ void norm_silu(
    const float* x, float* y, const float* gamma, const float* beta,
    const float* film, int has_film, u64 frames,
    u64 hw, int c, int groups, float eps) {
    __shared__ double partial[MAX_THREADS];
    __shared__ double chan[MAX_THREADS];
    __shared__ double mean[MAX_THREADS];
    __shared__ double var[MAX_THREADS];
    __shared__ float scale[MAX_THREADS];
    __shared__ float shift[MAX_THREADS];

    int t = threadIdx.x;
    int lanes = blockDim.x / c;
    int ch = t % c;
    int lane = t / c;
    int per = c / groups;
    u64 img = blockIdx.x;
    const float* xi = x + img * hw * c;
    float* yi = y + img * hw * c;
    double count = (double)hw * per;

    double s = 0.0;
    for (u64 p = lane; p < hw; p += lanes) s += (double)xi[p * c + ch];
    partial[t] = s;
    group_sums(partial, chan, mean, c, lanes, groups);
    if (t < groups) mean[t] /= count;
    __syncthreads();

    double m = mean[ch / per];
    s = 0.0;
    for (u64 p = lane; p < hw; p += lanes) {
        double d = (double)xi[p * c + ch] - m;
        s += d * d;
    }
    partial[t] = s;
    group_sums(partial, chan, var, c, lanes, groups);

    // y = x * scale + shift with scale = gamma * rstd, shift = beta - mean * scale.
    if (t < c) {
        int g = t / per;
        double sc = (double)gamma[t] / sqrt(var[g] / count + (double)eps);
        scale[t] = (float)sc;
        shift[t] = (float)((double)beta[t] - mean[g] * sc);
    }
    __syncthreads();

    float a = scale[ch], b = shift[ch];
    float gain = 1.0f, bias = 0.0f;
    if (has_film) {
        const float* p = film + (img / frames) * 2 * c;
        gain = 1.0f + p[ch];
        bias = p[c + ch];
    }
    for (u64 p = lane; p < hw; p += lanes) {
        float v = xi[p * c + ch] * a + b;
        if (has_film) v = v * gain + bias;
        v = v / (1.0f + expf(-v));
        yi[p * c + ch] = v;
    }
}
