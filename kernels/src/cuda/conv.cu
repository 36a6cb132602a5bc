// im2col of the 3x3 convolution (padding 1): row `(img, y, x)` of the column matrix holds the
// 3x3xCin receptive field in (tap row, tap column, channel) order, matching the
// `[3, 3, Cin, Cout]` weight layout of backend.rs, so `col @ w` is the convolution
// (cuBLAS does that GEMM, cuda/mod.rs). Out-of-range taps are zeros.

typedef unsigned long long u64;

extern "C" __global__ void im2col_3x3(const float* x, float* col, u64 images, u64 h, u64 w, u64 cin) {
    u64 k = 9 * cin;
    u64 n = images * h * w * k;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        u64 ci = i % cin;
        u64 tap = (i / cin) % 9;
        u64 row = i / k;
        u64 img = row / (h * w);
        u64 pix = row % (h * w);
        long long iy = (long long)(pix / w) + (long long)(tap / 3) - 1;
        long long ix = (long long)(pix % w) + (long long)(tap % 3) - 1;
        bool inside = iy >= 0 && ix >= 0 && iy < (long long)h && ix < (long long)w;
        col[i] = inside ? x[((img * h + (u64)iy) * w + (u64)ix) * cin + ci] : 0.0f;
    }
}
