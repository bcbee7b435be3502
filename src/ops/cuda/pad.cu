// Padding, upsampling and space/depth rearrangements (and row copies for banded convs).

// y[p, i, j] = x[p, reflect(i - pad, h·up) / up, reflect(j - pad, w·up) / up]:
// reflection padding (up = 1) or nearest ×2 upsampling then reflection padding (up = 2).
// With `edge` set, the border is repeated instead of mirrored (replication padding).
template <typename T>
__device__ void remap_fwd_impl(const T* x, T* y, long long planes, int h, int w, int pad, int up,
                               int edge) {
    const int oh = h * up + 2 * pad, ow = w * up + 2 * pad;
    // One plane per blockIdx.y and whole rows per block when the grid allows it: each row's
    // source row is found once, and no division per element (division per element made this
    // copy several times slower than its memory traffic).
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
