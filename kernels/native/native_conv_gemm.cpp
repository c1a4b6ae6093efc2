#include "native_conv_gemm.h"

#include <omp.h>

#include <algorithm>

#include "engine/aligned_vector.h"
#include "native_conv3x3.h"
#include "native_conv_dims.h"
#include "native_gemm.h"
#include "native_im2col.h"

namespace engine::native {

namespace {

bool gemm_narrow(const Shape& y) { return y[2] * y[3] <= kNarrowColumns; }

// Samples a 1x1 convolution on a narrow plane takes together: their inputs (16 KB each at 1,024
// channels of 2x2) stay in L2 beside a panel of weights while the panel runs over all of them.
constexpr int64_t kNarrowSampleGroup = 16;

}  // namespace

bool conv_gemm_fits(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    return a.groups == 1 && !conv3x3_fits(a, x, w, y);
}

size_t conv_gemm_packed_floats(const Shape& w, const Shape& y) {
    const int64_t K = w[0], CKK = w[1] * w[2] * w[3];
    return gemm_narrow(y) ? packed_a_rows_floats(K, CKK) : packed_a_floats(K, CKK);
}

void conv_gemm_pack(TensorView w, const Shape& y, float* out) {
    const int64_t K = w.shape[0], CKK = w.shape[1] * w.shape[2] * w.shape[3];
    if (gemm_narrow(y))
        pack_a_rows(K, CKK, w.data, CKK, out);
    else
        pack_a_whole(K, CKK, w.data, CKK, out);
}

size_t conv_gemm_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const ConvDims d = conv_dims(a, x, w, y);
    return conv_is_pointwise(a, d) ? 0 : whole_lines(size_t(d.CKK * d.P));
}

void conv_gemm_forward(const Attrs& a, TensorView x, const float* packed_w, const Shape& w, const float* bias,
                       const float* residual, TensorView y, float* scratch, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w, y.shape);
    const bool pointwise = conv_is_pointwise(a, d);
    const size_t col_floats = conv_gemm_scratch_per_thread(a, x.shape, w, y.shape);
    // The product's right-hand side for sample n: the input itself (1x1), or its column matrix.
    auto operand = [&](int64_t n, float* col) -> const float* {
        const float* xn = x.data + n * d.C * d.H * d.W;
        if (pointwise) return xn;
        im2col(a, d, xn, col);
        return col;
    };
    if (gemm_narrow(y.shape)) {
        // Threads share out (sample, row panel) jobs in contiguous runs; each writes its own rows of
        // y. A 1x1 convolution takes the samples kNarrowSampleGroup at a time, panel by panel, so that
        // each panel of weights (too many to stay in cache between samples: MobileNet's 1024-channel
        // layers hold 6 MB) is read once per group; any other builds a sample's column matrix once,
        // for all its panels.
        const int64_t panels = narrow_panels(d.K), group = pointwise ? kNarrowSampleGroup : 1, jobs = d.N * panels;
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            float* col = scratch + t * col_floats;
            const float* B = nullptr;
            for (int64_t job = jobs * t / nt, have = -1; job < jobs * (t + 1) / nt; ++job) {
                const int64_t first = job / (group * panels) * group, in_group = std::min(group, d.N - first);
                const int64_t rest = job - first * panels, panel = rest / in_group, n = first + rest % in_group;
                if (n != have) B = operand(n, col), have = n;
                float* yn = y.data + n * d.K * d.P;
                const int64_t k0 = panel * narrow_rows(), k1 = std::min(d.K, k0 + narrow_rows());
                conv_start_rows(yn, bias, k0, k1, d.P, d.P);
                gemm_packed_narrow(d.K, d.P, d.CKK, packed_w, B, d.P, yn, d.P, panel, panel + 1);
                conv_epilogue(residual, a.fused_relu, y.data, (n * d.K + k0) * d.P, k1 - k0, d.P, d.P);
            }
        }
        return;
    }
    // Rows [k0, k1) and columns [p0, p1) of sample n's output: bias + W B, then ReLU, as the product
    // stores its tiles; with a residual, the bias first, then += W B, then the epilogue's pass.
    auto block = [&](int64_t n, const float* B, int64_t k0, int64_t k1, int64_t p0, int64_t p1) {
        float* yn = y.data + n * d.K * d.P;
        if (!residual) {
            gemm_packed_nn(d.K, p1 - p0, d.CKK, packed_w, B + p0, d.P, yn + p0, d.P, k0, k1,
                           GemmStore{true, bias, a.fused_relu});
            return;
        }
        conv_start_rows(yn + p0, bias, k0, k1, p1 - p0, d.P);
        gemm_packed_nn(d.K, p1 - p0, d.CKK, packed_w, B + p0, d.P, yn + p0, d.P, k0, k1);
        conv_epilogue(residual, a.fused_relu, y.data, (n * d.K + k0) * d.P + p0, k1 - k0, p1 - p0, d.P);
    };
    if (d.N >= threads || threads == 1) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t n = 0; n < d.N; ++n)
            block(n, operand(n, scratch + omp_get_thread_num() * col_floats), 0, d.K, 0, d.P);
        return;
    }
    // Too few samples to share out: split each product between the threads, by its larger side:
    // output channels (each thread reads its share of the weights) where the weights outnumber the
    // columns, else pixels. Either way each thread builds the whole column matrix.
    const bool by_rows = d.K >= d.P;
    const int64_t row_steps = (d.K + kPackedRowStep - 1) / kPackedRowStep;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float* col = scratch + t * col_floats;
        for (int64_t n = 0; n < d.N; ++n) {
            const float* B = operand(n, col);
            if (by_rows)
                block(n, B, std::min(d.K, kPackedRowStep * (row_steps * t / nt)),
                      std::min(d.K, kPackedRowStep * (row_steps * (t + 1) / nt)), 0, d.P);
            else
                block(n, B, 0, d.K, d.P * t / nt, d.P * (t + 1) / nt);
        }
    }
}

size_t conv_grouped_scratch_per_thread(const Attrs& a, const Shape& x, const Shape& w, const Shape& y) {
    const ConvDims d = conv_dims(a, x, w, y);
    return whole_lines(size_t(d.CKK * d.P));
}

void conv_grouped_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, const float* residual,
                          TensorView y, float* scratch, int threads) {
    const ConvDims d = conv_dims(a, x.shape, w.shape, y.shape);
    const size_t per_thread = conv_grouped_scratch_per_thread(a, x.shape, w.shape, y.shape);
    const bool pointwise = conv_is_pointwise(a, d);
    auto one_sample = [&](int64_t n, float* col, int64_t row_begin, int64_t row_end) {
        for (int64_t g = 0; g < a.groups; ++g) {
            const float* xg = x.data + (n * d.C + g * d.Cg) * d.H * d.W;
            const float* B = xg;
            if (!pointwise) {
                im2col(a, d, xg, col);
                B = col;
            }
            float* yg = y.data + (n * d.K + g * d.Kg) * d.P;
            conv_start_rows(yg, bias ? bias + g * d.Kg : nullptr, row_begin, row_end, d.P, d.P);
            gemm_nn(row_end - row_begin, d.P, d.CKK, w.data + (g * d.Kg + row_begin) * d.CKK, d.CKK, B, d.P,
                    yg + row_begin * d.P, d.P);
            conv_epilogue(residual, a.fused_relu, y.data, (n * d.K + g * d.Kg + row_begin) * d.P, row_end - row_begin,
                          d.P, d.P);
        }
    };
    if (d.N >= threads || threads == 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t n = 0; n < d.N; ++n) one_sample(n, scratch + omp_get_thread_num() * per_thread, 0, d.Kg);
    } else {
        // Too few samples to share out: split the output channels instead (each thread redoes im2col,
        // which is cheap next to the product).
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int64_t begin = d.Kg * t / nt, end = d.Kg * (t + 1) / nt;
            for (int64_t n = 0; n < d.N; ++n)
                if (begin < end) one_sample(n, scratch + t * per_thread, begin, end);
        }
    }
}

}  // namespace engine::native
