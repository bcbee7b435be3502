// The Adam optimiser's update.

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
