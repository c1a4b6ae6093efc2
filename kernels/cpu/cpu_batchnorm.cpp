#include "cpu_batchnorm.h"

#include <cmath>

namespace engine::cpu {

namespace {

struct Layout {
    int64_t n, c, inner;
};

Layout layout(const Shape& s) { return {s[0], s[1], s.numel() / (s[0] * s[1])}; }

// Mean and biased variance of channel c.
void channel_stats(const TensorView& x, const Layout& L, int64_t c, double& mean, double& var) {
    double s = 0, s2 = 0;
    for (int64_t n = 0; n < L.n; ++n) {
        const float* __restrict p = x.data + (n * L.c + c) * L.inner;
        float a = 0, b = 0;
        for (int64_t i = 0; i < L.inner; ++i) a += p[i], b += p[i] * p[i];
        s += a, s2 += b;
    }
    const double count = double(L.n * L.inner);
    mean = s / count;
    var = std::max(0.0, s2 / count - mean * mean);
}

}  // namespace

void batchnorm_train_forward(const Attrs& a, const TensorView* in, TensorView y, int threads) {
    const TensorView &x = in[0], &scale = in[1], &bias = in[2], &run_mean = in[3], &run_var = in[4];
    const Layout L = layout(x.shape);
    const double count = double(L.n * L.inner);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < L.c; ++c) {
        double mean, var;
        channel_stats(x, L, c, mean, var);
        const double unbiased = count > 1 ? var * count / (count - 1) : var;
        run_mean[c] = float((1 - a.momentum) * run_mean[c] + a.momentum * mean);
        run_var[c] = float((1 - a.momentum) * run_var[c] + a.momentum * unbiased);
        const float k = float(scale[c] / std::sqrt(var + a.epsilon)), shift = float(bias[c] - mean * k);
        for (int64_t n = 0; n < L.n; ++n) {
            const float* __restrict p = x.data + (n * L.c + c) * L.inner;
            float* __restrict q = y.data + (n * L.c + c) * L.inner;
            for (int64_t i = 0; i < L.inner; ++i) q[i] = p[i] * k + shift;
        }
    }
}

void batchnorm_backward(const Attrs& a, const TensorView* in, TensorView gy, TensorView* gin, bool training,
                        int threads) {
    const TensorView &x = in[0], &scale = in[1];
    const Layout L = layout(x.shape);
    const double count = double(L.n * L.inner);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < L.c; ++c) {
        double mean, var;
        if (training) channel_stats(x, L, c, mean, var);
        else mean = in[3][c], var = in[4][c];
        const double inv = 1.0 / std::sqrt(var + a.epsilon);
        double sum_g = 0, sum_gx = 0;
        for (int64_t n = 0; n < L.n; ++n) {
            const float* __restrict g = gy.data + (n * L.c + c) * L.inner;
            const float* __restrict p = x.data + (n * L.c + c) * L.inner;
            float s = 0, t = 0;
            for (int64_t i = 0; i < L.inner; ++i) s += g[i], t += g[i] * p[i];
            sum_g += s, sum_gx += t;
        }
        const double sum_g_xhat = (sum_gx - mean * sum_g) * inv;
        if (gin[1].data) gin[1][c] += float(sum_g_xhat);
        if (gin[2].data) gin[2][c] += float(sum_g);
        if (!gin[0].data) continue;
        // gx = k * (g - [training] (sum_g + xhat * sum_g_xhat) / count), xhat = (x - mean) * inv
        const float k = float(scale[c] * inv);
        const float a_g = training ? float(sum_g / count) : 0.0f;
        const float b_x = training ? float(sum_g_xhat * inv / count) : 0.0f;
        const float m = float(mean);
        for (int64_t n = 0; n < L.n; ++n) {
            const float* __restrict g = gy.data + (n * L.c + c) * L.inner;
            const float* __restrict p = x.data + (n * L.c + c) * L.inner;
            float* __restrict q = gin[0].data + (n * L.c + c) * L.inner;
            for (int64_t i = 0; i < L.inner; ++i) q[i] += k * (g[i] - a_g - (p[i] - m) * b_x);
        }
    }
}

}  // namespace engine::cpu
