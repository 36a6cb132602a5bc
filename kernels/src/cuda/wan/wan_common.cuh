// Shared by every Wan2.1 kernel file: prepended to each `wan_*.cu` before NVRTC compiles it
// (wan/mod.rs `wan_source!`), because the sources are compiled from memory, without include
// paths. bf16 values are `unsigned short` bit patterns (no cuda_bf16.h), and the tensor-core
// instructions are inline PTX (sm_80 and newer).

typedef unsigned short bf16_bits;
typedef unsigned long long u64;

// f32 -> bf16 bits, round to nearest-even; NaN stays a (quiet) NaN with its sign, as
// half::bf16::from_f32 and PyTorch do. Overflow rounds to infinity.
__device__ __forceinline__ bf16_bits f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_bits)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_bits)(u >> 16);
}

// bf16 bits -> f32 (exact).
__device__ __forceinline__ float bf16_to_f32(bf16_bits b) {
    return __uint_as_float(((unsigned int)b) << 16);
}

// The shared-memory address of a generic pointer into shared memory, as PTX wants it.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

// Four 8 x 8 bf16 matrices: lane l gives the address of row l % 8 of matrix l / 8; register
// i of lane l receives (row l / 4, columns 2 (l % 4), +1) of matrix i, lower column in the
// lower half.
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const bf16_bits* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

// d += a . b for one 16 x 8 x 16 tile: bf16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_bf16(float d[4], const unsigned a[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16 bytes from global to shared memory, asynchronously; only `bytes` (0 or 16) are read,
// the rest is zero-filled.
__device__ __forceinline__ void cp_async16(bf16_bits* dst, const bf16_bits* src, unsigned bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :
                 : "r"(smem_addr(dst)), "l"(src), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most `N` of this thread's committed copy groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

