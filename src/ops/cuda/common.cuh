// Helpers shared by the fused kernels (pad.cu, pool.cu, norm.cu, adam.cu; see mod.rs), which
// are compiled at run time with NVRTC as one source, this file first. NCHW f32, contiguous;
// `planes` = N·C. Inference in half precision uses the `_h` variants (f16 storage as raw
// 16-bit values, f32 arithmetic).

#define GRID_STRIDE(i, total) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); \
         i += (long long)gridDim.x * blockDim.x)

__device__ __forceinline__ int reflect(int j, int n) {
    return j < 0 ? -j : (j >= n ? 2 * (n - 1) - j : j);
}

// f16 <-> f32 without cuda_fp16.h (NVRTC here has no CUDA headers), as that header does it.
__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const unsigned short* p) {
    float f;
    asm("{cvt.f32.f16 %0, %1;}" : "=f"(f) : "h"(*p));
    return f;
}
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(unsigned short* p, float v) {
    unsigned short h;
    asm("{cvt.rn.f16.f32 %0, %1;}" : "=h"(h) : "f"(v));
    *p = h;
}

// Source index along one axis of length n for output position o of remap_fwd.
__device__ __forceinline__ int remap_src(int o, int n, int pad, int up, int edge) {
    const int j = edge ? min(max(o - pad, 0), n * up - 1) : reflect(o - pad, n * up);
    return j / up;
}
