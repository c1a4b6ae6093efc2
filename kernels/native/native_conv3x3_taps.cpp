#include "native_conv3x3_taps.h"

#include <omp.h>

#include <algorithm>

#include "engine/aligned_vector.h"

namespace engine::native {

using taps::Geometry;
using taps::kKb;

namespace taps {

Geometry geometry(const Shape& x, int64_t K, const Shape& y) {
    Geometry g{x[1], x[2], x[3], K, x[3] > y[3] ? 2 : 1, y[2], y[3], y[2] * y[3], 0, 0, 0};
    g.rows = g.OH + 3 - g.S;
    g.slab = g.rows * g.OW;
    g.floats = whole_lines(g.C * 3 * g.S * g.slab + 64);
    return g;
}

}  // namespace taps

bool conv3x3_taps_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const int64_t s = a.stride[0];
    if (x.rank != 4 || w.rank != 4 || y.rank != 4 || a.groups != 1 || w[2] != 3 || w[3] != 3) return false;
    if ((s != 1 && s != 2) || a.stride[1] != s || a.dilation[0] != 1 || a.dilation[1] != 1) return false;
    if (!std::all_of(a.pad, a.pad + 4, [](int64_t p) { return p == 1; })) return false;
    // geometry() tells the stride from the sizes: a stride-2 output must be smaller than its input.
    return y[2] == (x[2] - 1) / s + 1 && y[3] == (x[3] - 1) / s + 1 && (s == 1 || x[3] > 1);
}

size_t conv3x3_taps_weights_floats(const Shape& w) { return size_t((w[0] + kKb - 1) / kKb * kKb * w[1] * 9); }

void conv3x3_taps_pack(TensorView w, float* u) {
    const int64_t K = w.shape[0], C = w.shape[1];
    std::fill(u, u + conv3x3_taps_weights_floats(w.shape), 0.0f);
    for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c)
            for (int t = 0; t < 9; ++t) u[((k / kKb * C + c) * 9 + t) * kKb + k % kKb] = w.data[(k * C + c) * 9 + t];
}

size_t conv3x3_taps_work_floats(const Shape& x, const Shape& y, int threads) {
    return size_t(std::max(threads, 1)) * size_t(taps::geometry(x, 1, y).floats);
}

void conv3x3_taps_forward(TensorView x, const float* u, const Shape& w, const float* bias, const float* residual,
                          bool relu, TensorView y, float* scratch, int threads) {
    const Geometry g = taps::geometry(x.shape, w[0], y.shape);
    const int64_t N = x.shape[0], in_size = g.C * g.H * g.W, out_size = g.K * g.P, kb = (g.K + kKb - 1) / kKb;
    auto res = [&](int64_t n) { return residual ? residual + n * out_size : nullptr; };
    if (threads == 1 || N >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t n = 0; n < N; ++n) {
            float* planes = scratch + omp_get_thread_num() * g.floats;
            taps::copy_avx512(g, x.data + n * in_size, planes, 0, g.C);
            taps::blocks_avx512(g, planes, u, bias, res(n), relu, y.data + n * out_size, 0, kb);
        }
        return;
    }
    // Fewer samples than threads: the threads copy a share of the channels each, then take a share
    // of the output channel blocks.
    for (int64_t n = 0; n < N; ++n) {
#pragma omp parallel num_threads(threads)
        {
            const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
            taps::copy_avx512(g, x.data + n * in_size, scratch, g.C * t / nt, g.C * (t + 1) / nt);
#pragma omp barrier
            taps::blocks_avx512(g, scratch, u, bias, res(n), relu, y.data + n * out_size, kb * t / nt,
                                kb * (t + 1) / nt);
        }
    }
}

}  // namespace engine::native
