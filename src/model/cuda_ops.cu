// Fused kernels for the style network and the VGG16 loss on CUDA (see cuda_ops.rs).
// Compiled at run time with NVRTC. NCHW f32, contiguous; `planes` = N·C. Inference in half
// precision uses the `_h` variants (f16 storage as raw 16-bit values, f32 arithmetic).

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

// bfloat16 (the loss network's dtype in mixed-precision training): the top half of an f32.
struct bf16_t {
    unsigned short v;
};
__device__ __forceinline__ float ld(const bf16_t* p) {
    return __uint_as_float(((unsigned int)p->v) << 16);
}
__device__ __forceinline__ void st(bf16_t* p, float v) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffff) > 0x7f800000) {  // NaN stays NaN
        p->v = (unsigned short)((u >> 16) | 0x40);
        return;
    }
    u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
    p->v = (unsigned short)(u >> 16);
}

// Source index along one axis of length n for output position o of remap_fwd.
__device__ __forceinline__ int remap_src(int o, int n, int pad, int up, int edge) {
    const int j = edge ? min(max(o - pad, 0), n * up - 1) : reflect(o - pad, n * up);
    return j / up;
}

// y[p, i, j] = x[p, reflect(i - pad, h·up) / up, reflect(j - pad, w·up) / up]:
// reflection padding (up = 1) or nearest ×2 upsampling then reflection padding (up = 2).
// With `edge` set, the border is repeated instead of mirrored (replication padding).
template <typename T>
__device__ void remap_fwd_impl(const T* x, T* y, long long planes, int h, int w, int pad, int up,
                               int edge) {
    const int oh = h * up + 2 * pad, ow = w * up + 2 * pad;
    // One plane per blockIdx.y and whole rows per block when the grid allows it: each row's
    // source row is found once, and no division per element (64-bit division made this
    // copy 5-8× slower than its memory traffic; per-element 32-bit division still 3×).
    if (gridDim.y > 1) {
        const long long p = blockIdx.y;
        const T* xp = x + p * h * w;
        T* yp = y + p * oh * ow;
        for (int oy = blockIdx.x; oy < oh; oy += gridDim.x) {
            const T* xr = xp + remap_src(oy, h, pad, up, edge) * w;
            T* yr = yp + oy * ow;
            for (int ox = threadIdx.x; ox < ow; ox += blockDim.x)
                yr[ox] = xr[remap_src(ox, w, pad, up, edge)];
        }
        return;
    }
    GRID_STRIDE(i, planes * oh * ow) {
        const int ox = i % ow;
        const long long t = i / ow;
        const int oy = t % oh;
        const long long p = t / oh;
        y[i] = x[(p * h + remap_src(oy, h, pad, up, edge)) * w + remap_src(ox, w, pad, up, edge)];
    }
}
extern "C" __global__ void remap_fwd(const float* x, float* y, long long planes, int h, int w,
                                     int pad, int up, int edge) {
    remap_fwd_impl(x, y, planes, h, w, pad, up, edge);
}
extern "C" __global__ void remap_fwd_h(const unsigned short* x, unsigned short* y,
                                       long long planes, int h, int w, int pad, int up, int edge) {
    remap_fwd_impl(x, y, planes, h, w, pad, up, edge);
}

// Reflection padding by `pad`, then space to depth by 2: y[p·4 + 2a + b, r, s] =
// padded[p, 2r + a, 2s + b] (zero past the padded image's last row or column), so that a
// stride-2 conv can run as a stride-1 conv with 4× the channels (see conv_rewrite.rs).
template <typename T>
__device__ void pad_s2d_impl(const T* x, T* y, int h, int w, int pad) {
    const int ph = h + 2 * pad, pw = w + 2 * pad;
    const int sh = (ph + 1) / 2, sw = (pw + 1) / 2;
    const long long p = blockIdx.y;  // input plane
    const T* xp = x + p * h * w;
    T* yp = y + p * 4 * sh * sw;
    // Rows of the four output planes, a block at a time (see remap_fwd_impl).
    for (int row = blockIdx.x; row < 4 * sh; row += gridDim.x) {
        const int q = row / sh, r = row - q * sh;
        const int py = 2 * r + (q >> 1), dx = q & 1;
        T* yr = yp + row * sw;
        if (py >= ph) {
            for (int s = threadIdx.x; s < sw; s += blockDim.x) yr[s] = T(0);
            continue;
        }
        const T* xr = xp + reflect(py - pad, h) * w;
        for (int s = threadIdx.x; s < sw; s += blockDim.x) {
            const int px = 2 * s + dx;
            yr[s] = px < pw ? xr[reflect(px - pad, w)] : T(0);
        }
    }
}
extern "C" __global__ void pad_s2d(const float* x, float* y, int h, int w, int pad) {
    pad_s2d_impl(x, y, h, w, pad);
}
extern "C" __global__ void pad_s2d_h(const unsigned short* x, unsigned short* y, int h, int w,
                                     int pad) {
    pad_s2d_impl(x, y, h, w, pad);
}

// Depth to space by 2: y[p, 2i + a, 2j + b] = x[4p + 2a + b, i, j] (p = n·C + c), for the
// upsampling convs computed at low resolution with four output channels per channel.
// Offset of output (oy, ox)'s source within its channel's four input planes.
__device__ __forceinline__ int d2s_src(int oy, int ox, int h, int w) {
    return (((oy & 1) * 2 + (ox & 1)) * h + (oy >> 1)) * w + (ox >> 1);
}

template <typename T>
__device__ void d2s_impl(const T* x, T* y, long long planes, int h, int w) {
    const int oh = 2 * h, ow = 2 * w;
    if (gridDim.y > 1) {  // one plane per blockIdx.y, whole rows per block (see remap_fwd_impl)
        const long long p = blockIdx.y;
        const T* xp = x + p * 4 * h * w;
        T* yp = y + p * oh * ow;
        for (int oy = blockIdx.x; oy < oh; oy += gridDim.x) {
            const T* xr = xp + ((oy & 1) * 2 * h + (oy >> 1)) * w;
            T* yr = yp + oy * ow;
            for (int ox = threadIdx.x; ox < ow; ox += blockDim.x)
                yr[ox] = xr[(ox & 1) * h * w + (ox >> 1)];
        }
        return;
    }
    GRID_STRIDE(i, planes * oh * ow) {
        const int ox = i % ow;
        const long long t = i / ow;
        const int oy = t % oh;
        const long long p = t / oh;
        y[i] = x[p * 4 * h * w + d2s_src(oy, ox, h, w)];
    }
}
extern "C" __global__ void d2s(const float* x, float* y, long long planes, int h, int w) {
    d2s_impl(x, y, planes, h, w);
}
extern "C" __global__ void d2s_h(const unsigned short* x, unsigned short* y, long long planes,
                                 int h, int w) {
    d2s_impl(x, y, planes, h, w);
}

// The network's last step in half precision: depth to space by 2 into an f32 image of
// `oh`×`ow` (≤ 2h × 2w: odd sizes crop the last row or column), plus the conv's bias.
// Grid: (rows, planes); plane p = n·C + c takes bias[c].
extern "C" __global__ void d2s_out_h(const unsigned short* x, float* y, const float* bias, int c,
                                     int h, int w, int oh, int ow) {
    const long long p = blockIdx.y;
    const unsigned short* xp = x + p * 4 * h * w;
    float* yp = y + p * oh * ow;
    const float b = bias[p % c];
    for (int oy = blockIdx.x; oy < oh; oy += gridDim.x) {
        const unsigned short* xr = xp + ((oy & 1) * 2 * h + (oy >> 1)) * w;
        float* yr = yp + (long long)oy * ow;
        for (int ox = threadIdx.x; ox < ow; ox += blockDim.x)
            yr[ox] = ld(xr + (ox & 1) * h * w + (ox >> 1)) + b;
    }
}

// Copies `rows` rows of width `w` of each plane from src (planes of `src_h` rows, starting at
// row `src_r0`) to dst (planes of `dst_h` rows, from row `dst_r0`): a band of an activation
// in and out of the contiguous buffers cuDNN calls get. Grid: (rows, planes).
template <typename T>
__device__ void copy_rows_impl(const T* src, T* dst, int src_h, int dst_h, int w, int rows,
                               int src_r0, int dst_r0) {
    const long long p = blockIdx.y;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* sr = src + (p * src_h + src_r0 + r) * w;
        T* dr = dst + (p * dst_h + dst_r0 + r) * w;
        for (int i = threadIdx.x; i < w; i += blockDim.x) dr[i] = sr[i];
    }
}
extern "C" __global__ void copy_rows(const float* src, float* dst, int src_h, int dst_h, int w,
                                     int rows, int src_r0, int dst_r0) {
    copy_rows_impl(src, dst, src_h, dst_h, w, rows, src_r0, dst_r0);
}
extern "C" __global__ void copy_rows_h(const unsigned short* src, unsigned short* dst, int src_h,
                                       int dst_h, int w, int rows, int src_r0, int dst_r0) {
    copy_rows_impl(src, dst, src_h, dst_h, w, rows, src_r0, dst_r0);
}

// The output positions (along one axis) that read upsampled position j of n: itself and its
// mirror images in the padding.
__device__ __forceinline__ int sources(int j, int n, int pad, int* out, int k) {
    out[k++] = j + pad;
    if (j >= 1 && j <= pad) out[k++] = pad - j;
    if (j >= n - 1 - pad && j <= n - 2) out[k++] = 2 * (n - 1) - j + pad;
    return k;
}

// Gradient of remap_fwd: each input pixel sums the output gradients of every position that
// copied it (a gather, so no atomics and a fixed summation order).
extern "C" __global__ void remap_bwd(const float* g, float* gx, long long planes, int h, int w,
                                     int pad, int up) {
    const int oh = h * up + 2 * pad, ow = w * up + 2 * pad;
    GRID_STRIDE(i, planes * h * w) {
        const int c = i % w;
        const long long t = i / w;
        const int r = t % h;
        const long long p = t / h;
        int rows[6], cols[6];
        int nr = 0, nc = 0;
        for (int u = 0; u < up; ++u) {
            nr = sources(r * up + u, h * up, pad, rows, nr);
            nc = sources(c * up + u, w * up, pad, cols, nc);
        }
        const float* gp = g + p * oh * ow;
        float acc = 0.f;
        for (int a = 0; a < nr; ++a)
            for (int b = 0; b < nc; ++b) acc += gp[rows[a] * ow + cols[b]];
        gx[i] = acc;
    }
}

// 2×2 max pooling, stride 2; odd trailing rows and columns are dropped. Grid (rows, planes)
// with whole output rows per block (no per-element division); flat past 65535 planes.
template <typename T>
__device__ void maxpool2_fwd_impl(const T* x, T* y, long long planes, int h, int w) {
    const int oh = h / 2, ow = w / 2;
    if (gridDim.y > 1) {
        const long long p = blockIdx.y;
        for (int oy = blockIdx.x; oy < oh; oy += gridDim.x) {
            const T* b0 = x + (p * h + 2 * oy) * w;
            T* yr = y + (p * oh + oy) * ow;
            for (int ox = threadIdx.x; ox < ow; ox += blockDim.x) {
                const T* b = b0 + 2 * ox;
                st(yr + ox, fmaxf(fmaxf(ld(b), ld(b + 1)), fmaxf(ld(b + w), ld(b + w + 1))));
            }
        }
        return;
    }
    GRID_STRIDE(i, planes * oh * ow) {
        const int ox = i % ow;
        const long long t = i / ow;
        const int oy = t % oh;
        const long long p = t / oh;
        const T* b = x + (p * h + 2 * oy) * w + 2 * ox;
        st(y + i, fmaxf(fmaxf(ld(b), ld(b + 1)), fmaxf(ld(b + w), ld(b + w + 1))));
    }
}
extern "C" __global__ void maxpool2_fwd(const float* x, float* y, long long planes, int h, int w) {
    maxpool2_fwd_impl(x, y, planes, h, w);
}
extern "C" __global__ void maxpool2_fwd_h(const unsigned short* x, unsigned short* y,
                                          long long planes, int h, int w) {
    maxpool2_fwd_impl(x, y, planes, h, w);
}
extern "C" __global__ void maxpool2_fwd_b(const bf16_t* x, bf16_t* y, long long planes, int h,
                                          int w) {
    maxpool2_fwd_impl(x, y, planes, h, w);
}

// Gradient of maxpool2_fwd at input (r, c) of plane p: each window's gradient goes to its first
// maximum (as PyTorch).
template <typename T>
__device__ __forceinline__ float maxpool2_grad_at(const T* xp, const T* gp, int h, int w, int r,
                                                  int c) {
    const int oh = h / 2, ow = w / 2;
    const int oy = r >> 1, ox = c >> 1;
    if (oy >= oh || ox >= ow) return 0.f;
    const T* b = xp + 2 * oy * w + 2 * ox;
    const float v[4] = {ld(b), ld(b + 1), ld(b + w), ld(b + w + 1)};
    const float m = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[2], v[3]));
    const int first = v[0] == m ? 0 : (v[1] == m ? 1 : (v[2] == m ? 2 : 3));
    return ((r & 1) * 2 + (c & 1)) == first ? ld(gp + oy * ow + ox) : 0.f;
}

template <typename T>
__device__ void maxpool2_bwd_impl(const T* x, const T* g, T* gx, long long planes, int h, int w) {
    const int oh = h / 2, ow = w / 2;
    if (gridDim.y > 1) {  // rows of one plane per block, as maxpool2_fwd_impl
        const long long p = blockIdx.y;
        const T* xp = x + p * h * w;
        const T* gp = g + p * oh * ow;
        for (int r = blockIdx.x; r < h; r += gridDim.x)
            for (int c = threadIdx.x; c < w; c += blockDim.x)
                st(gx + (p * h + r) * w + c, maxpool2_grad_at(xp, gp, h, w, r, c));
        return;
    }
    GRID_STRIDE(i, planes * h * w) {
        const int c = i % w;
        const long long t = i / w;
        const int r = t % h;
        const long long p = t / h;
        st(gx + i, maxpool2_grad_at(x + p * h * w, g + p * oh * ow, h, w, r, c));
    }
}
extern "C" __global__ void maxpool2_bwd(const float* x, const float* g, float* gx,
                                        long long planes, int h, int w) {
    maxpool2_bwd_impl(x, g, gx, planes, h, w);
}
extern "C" __global__ void maxpool2_bwd_h(const unsigned short* x, const unsigned short* g,
                                          unsigned short* gx, long long planes, int h, int w) {
    maxpool2_bwd_impl(x, g, gx, planes, h, w);
}
extern "C" __global__ void maxpool2_bwd_b(const bf16_t* x, const bf16_t* g, bf16_t* gx,
                                          long long planes, int h, int w) {
    maxpool2_bwd_impl(x, g, gx, planes, h, w);
}

// y = max(x + b[c], 0), b in f32. Grid (chunks, planes): plane p = n·C + c, no division per
// element (the flat form's 64-bit division made it several times slower than its traffic).
template <typename T>
__device__ void bias_relu_impl(const T* x, const float* b, T* y, long long total, int channels,
                               int hw) {
    if (gridDim.y > 1) {
        const long long p = blockIdx.y;
        const float bc = b[p % channels];
        const T* xp = x + p * hw;
        T* yp = y + p * hw;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < hw; i += gridDim.x * blockDim.x)
            st(yp + i, fmaxf(ld(xp + i) + bc, 0.f));
        return;
    }
    GRID_STRIDE(i, total) {
        const int c = (i / hw) % channels;
        st(y + i, fmaxf(ld(x + i) + b[c], 0.f));
    }
}
extern "C" __global__ void bias_relu_fwd(const float* x, const float* b, float* y,
                                         long long total, int channels, int hw) {
    bias_relu_impl(x, b, y, total, channels, hw);
}
extern "C" __global__ void bias_relu_fwd_h(const unsigned short* x, const float* b,
                                           unsigned short* y, long long total, int channels,
                                           int hw) {
    bias_relu_impl(x, b, y, total, channels, hw);
}
extern "C" __global__ void bias_relu_fwd_b(const bf16_t* x, const float* b, bf16_t* y,
                                           long long total, int channels, int hw) {
    bias_relu_impl(x, b, y, total, channels, hw);
}

// gx = g where y > 0, else 0 (gradient of a ReLU from its output).
template <typename T>
__device__ void relu_bwd_impl(const T* y, const T* g, T* gx, long long total) {
    GRID_STRIDE(i, total) { st(gx + i, ld(y + i) > 0.f ? ld(g + i) : 0.f); }
}
extern "C" __global__ void relu_bwd(const float* y, const float* g, float* gx, long long total) {
    relu_bwd_impl(y, g, gx, total);
}
extern "C" __global__ void relu_bwd_h(const unsigned short* y, const unsigned short* g,
                                      unsigned short* gx, long long total) {
    relu_bwd_impl(y, g, gx, total);
}
extern "C" __global__ void relu_bwd_b(const bf16_t* y, const bf16_t* g, bf16_t* gx,
                                      long long total) {
    relu_bwd_impl(y, g, gx, total);
}

// Sums of double values across a block; the result is valid in thread 0.
template <int K>
__device__ void block_sum(double (&v)[K]) {
    __shared__ double shared[K][32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        for (int o = 16; o > 0; o /= 2) v[k] += __shfl_down_sync(0xffffffff, v[k], o);
        if (lane == 0) shared[k][warp] = v[k];
    }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x / 32;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            v[k] = lane < warps ? shared[k][lane] : 0.0;
            for (int o = 16; o > 0; o /= 2) v[k] += __shfl_down_sync(0xffffffff, v[k], o);
        }
    }
}

// Instance norm statistics: stats[p] += (Σx, Σx²) over a chunk of plane p = blockIdx.y.
// stats must start at zero. Accumulated in double, so E[x²] − E[x]² keeps its precision.
template <typename T>
__device__ void in_stats_impl(const T* x, double* stats, int hw, int chunk) {
    const long long p = blockIdx.y;
    const int start = blockIdx.x * chunk, end = min(start + chunk, hw);
    const T* xp = x + p * hw;
    double v[2] = {0.0, 0.0};
    for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
        const double a = ld(xp + i);
        v[0] += a;
        v[1] += a * a;
    }
    block_sum<2>(v);
    if (threadIdx.x == 0) {
        atomicAdd(&stats[2 * p], v[0]);
        atomicAdd(&stats[2 * p + 1], v[1]);
    }
}
extern "C" __global__ void in_stats(const float* x, double* stats, int hw, int chunk) {
    in_stats_impl(x, stats, hw, chunk);
}
extern "C" __global__ void in_stats_h(const unsigned short* x, double* stats, int hw, int chunk) {
    in_stats_impl(x, stats, hw, chunk);
}

// Mean and 1/sqrt(var + eps) of plane p from its sums (biased variance, as PyTorch).
__device__ __forceinline__ void plane_moments(const double* stats, long long p, int hw, double eps,
                                              float& mean, float& rstd) {
    const double m = stats[2 * p] / hw;
    const double var = fmax(stats[2 * p + 1] / hw - m * m, 0.0);
    mean = (float)m;
    rstd = (float)(1.0 / sqrt(var + eps));
}

// The normalised, affine value before the optional ReLU; forward and backward share it so the
// ReLU mask recomputed in the backward pass is exactly the forward's.
__device__ __forceinline__ float in_affine(float x, float mean, float rstd, float gamma,
                                           float beta) {
    return (x - mean) * rstd * gamma + beta;
}

template <typename T>
__device__ void in_apply_impl(const T* x, const double* stats, const float* gamma,
                              const float* beta, T* y, long long total, int channels, int hw,
                              double eps, int relu) {
    GRID_STRIDE(i, total) {
        const long long p = i / hw;
        const int c = p % channels;
        float mean, rstd;
        plane_moments(stats, p, hw, eps, mean, rstd);
        const float v = in_affine(ld(x + i), mean, rstd, gamma[c], beta[c]);
        st(y + i, relu ? fmaxf(v, 0.f) : v);
    }
}
extern "C" __global__ void in_apply(const float* x, const double* stats, const float* gamma,
                                    const float* beta, float* y, long long total, int channels,
                                    int hw, double eps, int relu) {
    in_apply_impl(x, stats, gamma, beta, y, total, channels, hw, eps, relu);
}
extern "C" __global__ void in_apply_h(const unsigned short* x, const double* stats,
                                      const float* gamma, const float* beta, unsigned short* y,
                                      long long total, int channels, int hw, double eps,
                                      int relu) {
    in_apply_impl(x, stats, gamma, beta, y, total, channels, hw, eps, relu);
}

// Half-precision inference, planes whose size is a multiple of 8: the same norm in three
// short kernels that move 16 bytes per thread and access (the scalar kernels above move 2, and
// recompute the moments in double for every element). Sums start in f32 per thread (16 values
// at most), then go on in double.
struct alignas(16) H8 {
    unsigned short v[8];
};

extern "C" __global__ void in_stats_h8(const H8* x, double* stats, int hw8, int chunk8) {
    const long long p = blockIdx.y;
    const int start = blockIdx.x * chunk8, end = min(start + chunk8, hw8);
    const H8* xp = x + p * hw8;
    float s = 0.f, q = 0.f;
    for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
        const H8 a = xp[i];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const float f = ld(&a.v[k]);
            s += f;
            q += f * f;
        }
    }
    double v[2] = {s, q};
    block_sum<2>(v);
    if (threadIdx.x == 0) {
        atomicAdd(&stats[2 * p], v[0]);
        atomicAdd(&stats[2 * p + 1], v[1]);
    }
}

// Mean and biased variance of each plane from its sums: out[p] = (mean, var).
extern "C" __global__ void in_moments(const double* stats, float* out, int planes, int hw) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= planes) return;
    const double m = stats[2 * p] / hw;
    out[2 * p] = (float)m;
    out[2 * p + 1] = (float)fmax(stats[2 * p + 1] / hw - m * m, 0.0);
}

// ss[p] = (γ·rstd, β − mean·γ·rstd): the norm as one multiply-add per element.
extern "C" __global__ void in_scale_shift(const double* stats, const float* gamma,
                                         const float* beta, float* ss, int planes, int channels,
                                         int hw, double eps) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= planes) return;
    float mean, rstd;
    plane_moments(stats, p, hw, eps, mean, rstd);
    const int c = p % channels;
    const float scale = gamma[c] * rstd;
    ss[2 * p] = scale;
    ss[2 * p + 1] = beta[c] - mean * scale;
}

template <bool ADD>
__device__ void in_apply_h8_impl(const H8* x, const float* ss, const H8* res, H8* y,
                                 long long total8, int hw8, int relu) {
    GRID_STRIDE(i, total8) {
        const long long p = i / hw8;
        const float scale = ss[2 * p], shift = ss[2 * p + 1];
        const H8 a = x[i];
        H8 r;
        if (ADD) r = res[i];
        H8 o;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            float v = ld(&a.v[k]) * scale + shift;
            if (relu) v = fmaxf(v, 0.f);
            if (ADD) v += ld(&r.v[k]);
            st(&o.v[k], v);
        }
        y[i] = o;
    }
}
extern "C" __global__ void in_apply_h8(const H8* x, const float* ss, H8* y, long long total8,
                                       int hw8, int relu) {
    in_apply_h8_impl<false>(x, ss, nullptr, y, total8, hw8, relu);
}
// The residual blocks' second norm and the skip connection in one pass: y = res + norm(x).
extern "C" __global__ void in_apply_add_h8(const H8* x, const float* ss, const H8* res, H8* y,
                                           long long total8, int hw8, int relu) {
    in_apply_h8_impl<true>(x, ss, res, y, total8, hw8, relu);
}

// Backward sums per plane: sums[p] = (Σx, Σx², Σg', Σg'·x), g' = g masked by the ReLU. The
// statistics are recomputed here rather than kept from the forward pass. params = [γ; β].
extern "C" __global__ void in_bwd_sums(const float* x, const float* g, const float* params,
                                       double* sums, int channels, int hw, int chunk, double eps,
                                       int relu) {
    const long long p = blockIdx.y;
    const int start = blockIdx.x * chunk, end = min(start + chunk, hw);
    const float* xp = x + p * hw;
    const float* gp = g + p * hw;
    double v[2] = {0.0, 0.0};
    for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
        const double a = xp[i];
        v[0] += a;
        v[1] += a * a;
    }
    block_sum<2>(v);
    // The ReLU mask needs the moments, which need every chunk: masked sums go in a second
    // kernel when relu is set (in_bwd_masked_sums); without ReLU they are taken here.
    double u[2] = {0.0, 0.0};
    if (!relu) {
        for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
            const double gg = gp[i];
            u[0] += gg;
            u[1] += gg * xp[i];
        }
    }
    __syncthreads();
    block_sum<2>(u);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[4 * p], v[0]);
        atomicAdd(&sums[4 * p + 1], v[1]);
        if (!relu) {
            atomicAdd(&sums[4 * p + 2], u[0]);
            atomicAdd(&sums[4 * p + 3], u[1]);
        }
    }
}

__device__ __forceinline__ void plane_moments4(const double* sums, long long p, int hw, double eps,
                                               float& mean, float& rstd) {
    const double m = sums[4 * p] / hw;
    const double var = fmax(sums[4 * p + 1] / hw - m * m, 0.0);
    mean = (float)m;
    rstd = (float)(1.0 / sqrt(var + eps));
}

// With ReLU: Σg' and Σg'·x where g' = g · [γ·x̂ + β > 0], once the moments are known.
extern "C" __global__ void in_bwd_masked_sums(const float* x, const float* g, const float* params,
                                              double* sums, int channels, int hw, int chunk,
                                              double eps) {
    const long long p = blockIdx.y;
    const int c = p % channels;
    const int start = blockIdx.x * chunk, end = min(start + chunk, hw);
    const float* xp = x + p * hw;
    const float* gp = g + p * hw;
    float mean, rstd;
    plane_moments4(sums, p, hw, eps, mean, rstd);
    const float gamma = params[c], beta = params[channels + c];
    double u[2] = {0.0, 0.0};
    for (int i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float a = xp[i];
        const float gg = in_affine(a, mean, rstd, gamma, beta) > 0.f ? gp[i] : 0.f;
        u[0] += gg;
        u[1] += (double)gg * a;
    }
    block_sum<2>(u);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[4 * p + 2], u[0]);
        atomicAdd(&sums[4 * p + 3], u[1]);
    }
}

// dx = γ·rstd·(g' − mean(g') − x̂·mean(g'·x̂)).
extern "C" __global__ void in_bwd_dx(const float* x, const float* g, const float* params,
                                     const double* sums, float* gx, long long total, int channels,
                                     int hw, double eps, int relu) {
    GRID_STRIDE(i, total) {
        const long long p = i / hw;
        const int c = p % channels;
        float mean, rstd;
        plane_moments4(sums, p, hw, eps, mean, rstd);
        const float gamma = params[c], beta = params[channels + c];
        const float a = x[i];
        float gg = g[i];
        if (relu && !(in_affine(a, mean, rstd, gamma, beta) > 0.f)) gg = 0.f;
        const double sg = sums[4 * p + 2], sgx = sums[4 * p + 3];
        const float mg = (float)(sg / hw);
        const float mgx = (float)(rstd * (sgx - (double)mean * sg) / hw);  // mean(g'·x̂)
        const float xhat = (a - mean) * rstd;
        gx[i] = gamma * rstd * (gg - mg - xhat * mgx);
    }
}

// dγ[c] = Σ_n Σ g'·x̂, dβ[c] = Σ_n Σ g', written after the `total` values of dx in out.
extern "C" __global__ void in_bwd_params(const double* sums, float* out, long long total, int n,
                                         int channels, int hw, double eps) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double dgamma = 0.0, dbeta = 0.0;
    for (int b = 0; b < n; ++b) {
        const long long p = (long long)b * channels + c;
        float mean, rstd;
        plane_moments4(sums, p, hw, eps, mean, rstd);
        const double sg = sums[4 * p + 2], sgx = sums[4 * p + 3];
        dgamma += rstd * (sgx - (double)mean * sg);
        dbeta += sg;
    }
    out[total + c] = (float)dgamma;
    out[total + channels + c] = (float)dbeta;
}

// Adam, in place: a = β·a + (1 − β)·(square ? g² : g) (the moment estimates).
extern "C" __global__ void adam_moment(float* a, const float* g, long long n, float beta,
                                       int square) {
    GRID_STRIDE(i, n) {
        const float v = square ? g[i] * g[i] : g[i];
        a[i] = a[i] * beta + v * (1.f - beta);
    }
}

// Adam, in place: p −= lr · (m / c1) / (sqrt(v / c2) + eps), c1 and c2 the bias corrections.
extern "C" __global__ void adam_update(float* p, const float* m, const float* v, long long n,
                                       float lr, float c1, float c2, float eps) {
    GRID_STRIDE(i, n) { p[i] -= (m[i] / c1) / (sqrtf(v[i] / c2) + eps) * lr; }
}
