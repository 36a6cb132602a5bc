// Elementwise ops of the CUDA backend (cuda/mod.rs) on channels-last tensors `[N, H, W, C]`
// (backend.rs): SiLU, add, frame embedding, and the bias broadcast that GEMM outputs start
// from. Grid-stride loops, so any grid size covers any tensor; 64-bit indices.

typedef unsigned long long u64;

#define GRID_STRIDE(i, n) \
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// out[r, c] = row[c], or out[r, c] += row[c] when `accumulate`: the bias that a GEMM with
// beta = 1 then adds onto (a fresh output, or the residual stream).
extern "C" __global__ void bias_rows(float* out, const float* row, u64 rows, u64 width, int accumulate) {
    GRID_STRIDE(i, rows * width) { out[i] = (accumulate ? out[i] : 0.0f) + row[i % width]; }
}

// x * sigmoid(x), written as the CPU backend does: x / (1 + exp(-x)).
extern "C" __global__ void silu(float* x, u64 n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-v));
    }
}

extern "C" __global__ void add(float* x, const float* y, u64 n) {
    GRID_STRIDE(i, n) { x[i] += y[i]; }
}

// x[b * F + f, .., c] += emb[f, c].
extern "C" __global__ void add_frame_embedding(float* x, const float* emb, u64 n, u64 c, u64 image_len, u64 frames) {
    GRID_STRIDE(i, n) { x[i] += emb[((i / image_len) % frames) * c + i % c]; }
}
