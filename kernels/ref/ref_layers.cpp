// BatchNorm, Gemm, Softmax, Pad and Dropout.
#include <cmath>
#include <vector>

#include "ref_kernels.h"

namespace engine::ref {

namespace {

struct ChannelLayout {
    int64_t n, c, inner;  // x viewed as [n, c, inner]
};

ChannelLayout channels(const Shape& s) {
    int64_t inner = 1;
    for (int i = 2; i < s.rank; ++i) inner *= s[i];
    return {s[0], s[1], inner};
}

// Batch statistics per channel (biased variance, as normalisation uses).
void batch_stats(TensorView x, std::vector<double>& mean, std::vector<double>& var) {
    auto L = channels(x.shape);
    mean.assign(L.c, 0);
    var.assign(L.c, 0);
    const double count = double(L.n * L.inner);
    for (int64_t c = 0; c < L.c; ++c) {
        double s = 0, s2 = 0;
        for (int64_t n = 0; n < L.n; ++n)
            for (int64_t i = 0; i < L.inner; ++i) {
                double v = x[(n * L.c + c) * L.inner + i];
                s += v;
                s2 += v * v;
            }
        mean[c] = s / count;
        var[c] = std::max(0.0, s2 / count - mean[c] * mean[c]);
    }
}

}  // namespace

void batchnorm_forward(const Attrs& a, TensorView x, TensorView scale, TensorView bias, TensorView mean, TensorView var,
                       TensorView y, bool training) {
    auto L = channels(x.shape);
    std::vector<double> m(L.c), v(L.c);
    if (training) {
        batch_stats(x, m, v);
        const double count = double(L.n * L.inner);
        for (int64_t c = 0; c < L.c; ++c) {
            // Running statistics use the unbiased variance, as PyTorch does.
            double unbiased = count > 1 ? v[c] * count / (count - 1) : v[c];
            mean[c] = float((1 - a.momentum) * mean[c] + a.momentum * m[c]);
            var[c] = float((1 - a.momentum) * var[c] + a.momentum * unbiased);
        }
    } else {
        for (int64_t c = 0; c < L.c; ++c) m[c] = mean[c], v[c] = var[c];
    }
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t c = 0; c < L.c; ++c) {
            double inv = 1.0 / std::sqrt(v[c] + a.epsilon);
            for (int64_t i = 0; i < L.inner; ++i) {
                int64_t k = (n * L.c + c) * L.inner + i;
                y[k] = float((x[k] - m[c]) * inv * scale[c] + bias[c]);
            }
        }
}

void batchnorm_backward(const Attrs& a, TensorView x, TensorView scale, TensorView mean, TensorView var, TensorView gy,
                        TensorView gx, TensorView gscale, TensorView gbias, bool training) {
    auto L = channels(x.shape);
    std::vector<double> m(L.c), v(L.c);
    if (training)
        batch_stats(x, m, v);
    else
        for (int64_t c = 0; c < L.c; ++c) m[c] = mean[c], v[c] = var[c];
    const double count = double(L.n * L.inner);
    for (int64_t c = 0; c < L.c; ++c) {
        double inv = 1.0 / std::sqrt(v[c] + a.epsilon);
        double sum_g = 0, sum_g_xhat = 0;
        for (int64_t n = 0; n < L.n; ++n)
            for (int64_t i = 0; i < L.inner; ++i) {
                int64_t k = (n * L.c + c) * L.inner + i;
                sum_g += gy[k];
                sum_g_xhat += gy[k] * (x[k] - m[c]) * inv;
            }
        if (gscale.data) gscale[c] += float(sum_g_xhat);
        if (gbias.data) gbias[c] += float(sum_g);
        if (!gx.data) continue;
        for (int64_t n = 0; n < L.n; ++n)
            for (int64_t i = 0; i < L.inner; ++i) {
                int64_t k = (n * L.c + c) * L.inner + i;
                double g = gy[k];
                if (training) {  // the batch statistics depend on x too
                    double xhat = (x[k] - m[c]) * inv;
                    g = g - sum_g / count - xhat * sum_g_xhat / count;
                }
                gx[k] += float(g * scale[c] * inv);
            }
    }
}

void gemm_forward(const Attrs& a, TensorView A, TensorView B, const TensorView* C, TensorView y) {
    const int64_t M = y.shape[0], N = y.shape[1], K = a.trans_a ? A.shape[0] : A.shape[1];
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k) {
                float av = a.trans_a ? A[k * M + i] : A[i * K + k];
                float bv = a.trans_b ? B[j * K + k] : B[k * N + j];
                s += double(av) * bv;
            }
            float c = 0;
            if (C) {  // C broadcasts to [M, N]
                const Shape& cs = C->shape;
                int64_t ci = cs.rank == 2 ? (cs[0] == 1 ? 0 : i) * cs[1] + (cs[1] == 1 ? 0 : j)
                                          : (cs.rank == 1 && cs[0] != 1 ? j : 0);
                c = (*C)[ci];
            }
            y[i * N + j] = float(a.alpha * s + a.beta * c);
        }
}

void gemm_backward(const Attrs& a, TensorView A, TensorView B, const TensorView* C, TensorView gy, TensorView gA,
                   TensorView gB, TensorView gC) {
    const int64_t M = gy.shape[0], N = gy.shape[1], K = a.trans_a ? A.shape[0] : A.shape[1];
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            float g = a.alpha * gy[i * N + j];
            for (int64_t k = 0; k < K; ++k) {
                int64_t ai = a.trans_a ? k * M + i : i * K + k;
                int64_t bi = a.trans_b ? j * K + k : k * N + j;
                if (gA.data) gA[ai] += g * B[bi];
                if (gB.data) gB[bi] += g * A[ai];
            }
            if (C && gC.data) {
                const Shape& cs = C->shape;
                int64_t ci = cs.rank == 2 ? (cs[0] == 1 ? 0 : i) * cs[1] + (cs[1] == 1 ? 0 : j)
                                          : (cs.rank == 1 && cs[0] != 1 ? j : 0);
                gC[ci] += a.beta * gy[i * N + j];
            }
        }
}

// Softmax along `axis`: the tensor is [outer, axis_len, inner].
static void softmax_layout(int64_t axis, const Shape& s, int64_t& outer, int64_t& len, int64_t& inner) {
    outer = 1, inner = 1, len = s[axis];
    for (int i = 0; i < axis; ++i) outer *= s[i];
    for (int i = int(axis) + 1; i < s.rank; ++i) inner *= s[i];
}

void softmax_forward(int64_t axis, TensorView x, TensorView y) {
    int64_t outer, len, inner;
    softmax_layout(axis, x.shape, outer, len, inner);
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t in = 0; in < inner; ++in) {
            auto at = [&](int64_t k) { return (o * len + k) * inner + in; };
            float mx = x[at(0)];
            for (int64_t k = 1; k < len; ++k) mx = std::max(mx, x[at(k)]);
            double sum = 0;
            for (int64_t k = 0; k < len; ++k) sum += std::exp(double(x[at(k)]) - mx);
            for (int64_t k = 0; k < len; ++k) y[at(k)] = float(std::exp(double(x[at(k)]) - mx) / sum);
        }
}

void softmax_backward(int64_t axis, TensorView y, TensorView gy, TensorView gx) {
    int64_t outer, len, inner;
    softmax_layout(axis, y.shape, outer, len, inner);
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t in = 0; in < inner; ++in) {
            auto at = [&](int64_t k) { return (o * len + k) * inner + in; };
            double dot = 0;
            for (int64_t k = 0; k < len; ++k) dot += double(gy[at(k)]) * y[at(k)];
            for (int64_t k = 0; k < len; ++k) gx[at(k)] += float(y[at(k)] * (gy[at(k)] - dot));
        }
}

// Calls visit(x_index, y_index) for every input element and its place in the padded output.
template <typename Visit>
static void for_each_padded(const Attrs& a, const Shape& xs, const Shape& ys, Visit visit) {
    int64_t idx[Shape::kMaxRank] = {};
    for (int64_t i = 0; i < xs.numel(); ++i) {
        int64_t yi = 0;
        for (int d = 0; d < xs.rank; ++d) yi = yi * ys[d] + idx[d] + a.pads[d];
        visit(i, yi);
        for (int d = xs.rank - 1; d >= 0; --d) {
            if (++idx[d] < xs[d]) break;
            idx[d] = 0;
        }
    }
}

void pad_forward(const Attrs& a, TensorView x, TensorView y) {
    for (int64_t i = 0; i < y.numel(); ++i) y[i] = a.pad_value;
    for_each_padded(a, x.shape, y.shape, [&](int64_t xi, int64_t yi) { y[yi] = x[xi]; });
}

void pad_backward(const Attrs& a, TensorView gy, TensorView gx) {
    for_each_padded(a, gx.shape, gy.shape, [&](int64_t xi, int64_t yi) { gx[xi] += gy[yi]; });
}

static bool dropped(uint64_t seed, int64_t i, float ratio) {
    // splitmix64 of (seed, i): a counter-based generator, so backward can recompute the mask.
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * uint64_t(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53 < ratio;
}

void dropout_forward(float ratio, uint64_t seed, TensorView x, TensorView y, bool training) {
    const float keep_scale = training ? 1.0f / (1.0f - ratio) : 1.0f;
    for (int64_t i = 0; i < x.numel(); ++i) y[i] = training && dropped(seed, i, ratio) ? 0.0f : x[i] * keep_scale;
}

void dropout_backward(float ratio, uint64_t seed, TensorView gy, TensorView gx, bool training) {
    const float keep_scale = training ? 1.0f / (1.0f - ratio) : 1.0f;
    for (int64_t i = 0; i < gy.numel(); ++i)
        if (!(training && dropped(seed, i, ratio))) gx[i] += gy[i] * keep_scale;
}

}  // namespace engine::ref
