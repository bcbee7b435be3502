// Instance norm: statistics, the normalisation (+ ReLU, + residual add) and its gradient.

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
