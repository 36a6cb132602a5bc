// Elementwise ops of the CUDA backend (cuda/mod.rs) on channels-last tensors `[N, H, W, C]`
// (backend.rs): SiLU, add, FiLM, frame embedding, and the bias broadcast that GEMM outputs
// start from. Grid-stride loops, so any grid size covers any tensor; 64-bit indices.

typedef unsigned long long u64;

#define GRID_STRIDE(i, n) \
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// out[r, c] = row[c] for `rows` rows of `width`: the bias that a GEMM with beta = 1 adds onto.
extern "C" __global__ void fill_rows(float* out, const float* row, u64 rows, u64 width) {
    GRID_STRIDE(i, rows * width) { out[i] = row[i % width]; }
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

// x * (1 + scale) + shift, where `ss [clips, 2C]` holds each clip's scale then shift and
// image `i / image_len` belongs to clip `image / frames`.
extern "C" __global__ void film(float* x, const float* ss, u64 n, u64 c, u64 image_len, u64 frames) {
    GRID_STRIDE(i, n) {
        const float* p = ss + (i / image_len / frames) * 2 * c;
        u64 ch = i % c;
        x[i] = x[i] * (1.0f + p[ch]) + p[c + ch];
    }
}

// x[b * F + f, .., c] += emb[f, c].
extern "C" __global__ void add_frame_embedding(float* x, const float* emb, u64 n, u64 c, u64 image_len, u64 frames) {
    GRID_STRIDE(i, n) { x[i] += emb[((i / image_len) % frames) * c + i % c]; }
}
