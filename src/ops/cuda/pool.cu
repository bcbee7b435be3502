// The VGG16 loss network's 2×2 max pooling, bias + ReLU and ReLU gradient.

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
