#include "cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu_batchnorm.h"
#include "cpu_conv.h"
#include "cpu_pool.h"
#include "cpu_threads.h"
#include "cpu_winograd.h"

namespace engine::cpu {

namespace {

void binary_span(Op op, const float* __restrict x, const float* __restrict z, int64_t step, float* __restrict out,
                 int64_t n) {
    switch (op) {
        case Op::Add: for (int64_t i = 0; i < n; ++i) out[i] = x[i] + z[i * step]; break;
        case Op::Sub: for (int64_t i = 0; i < n; ++i) out[i] = x[i] - z[i * step]; break;
        case Op::Mul: for (int64_t i = 0; i < n; ++i) out[i] = x[i] * z[i * step]; break;
        default: for (int64_t i = 0; i < n; ++i) out[i] = x[i] / z[i * step]; break;
    }
}

// True when b holds one value per channel of an NCHW a: [C,1,1] or [1,C,1,1] (input normalisation).
bool per_channel(const Shape& a, const Shape& b) {
    if (a.rank != 4 || b.numel() != a[1] || b.rank < 3 || b.rank > 4) return false;
    return b[b.rank - 1] == 1 && b[b.rank - 2] == 1 && b[b.rank - 3] == a[1];
}

// Element-wise binary op when b is a scalar, has a's shape or one value per channel; false when
// another broadcast is needed.
bool binary_fast(Op op, TensorView a, TensorView b, TensorView y) {
    if (a.shape != y.shape) return false;
    if (b.numel() == 1 || b.shape == y.shape) {
        binary_span(op, a.data, b.data, b.numel() == 1 ? 0 : 1, y.data, y.numel());
        return true;
    }
    if (!per_channel(a.shape, b.shape)) return false;
    const int64_t C = a.shape[1], inner = a.shape[2] * a.shape[3];
    for (int64_t p = 0; p < a.shape[0] * C; ++p)
        binary_span(op, a.data + p * inner, b.data + p % C, 0, y.data + p * inner, inner);
    return true;
}

void batchnorm_inference(const Attrs& a, const TensorView* in, TensorView y) {
    const int64_t N = in[0].shape[0], C = in[0].shape[1], inner = in[0].numel() / (N * C);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const float scale = in[1][c] / std::sqrt(in[4][c] + a.epsilon);
            const float shift = in[2][c] - in[3][c] * scale;
            const float* __restrict x = in[0].data + (n * C + c) * inner;
            float* __restrict out = y.data + (n * C + c) * inner;
            for (int64_t i = 0; i < inner; ++i) out[i] = x[i] * scale + shift;
        }
}

}  // namespace

CpuBackend::CpuBackend(int threads) : threads_(threads > 0 ? threads : omp_get_num_procs()) {
    threads_prepare(threads_);
}

size_t CpuBackend::scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const {
    if (node.op != Op::Conv) return 0;
    size_t floats = size_t(threads_) * conv_scratch_per_thread(node.attrs, in[0], in[1], out, /*backward=*/true);
    if (winograd_fits(node.attrs, in[0], in[1], out)) floats = std::max(floats, winograd_scratch(in[0], in[1], threads_));
    return floats;
}

void CpuBackend::prepare(const Node& node, const Shape*, int, const Shape&) { winograd_.erase(&node); }

bool CpuBackend::winograd_conv(const OpArgs& a, const float* bias, const float* residual) {
    const Node& n = a.node;
    if (!a.weights_fixed || !uses_winograd()) {  // weights may change between runs: no copy to go stale
        winograd_.erase(&n);
        return false;
    }
    const TensorView &x = a.in[0], &w = a.in[1];
    if (!winograd_fits(n.attrs, x.shape, w.shape, a.out.shape)) return false;
    WinogradWeights& t = winograd_[&n];
    if (t.u.empty() || t.source != w.data) t = {w.data, winograd_weights(w)};
    winograd_forward(x, t.u.data(), w.shape, bias, residual, n.attrs.fused_relu, a.out, a.scratch, threads_);
    return true;
}

void CpuBackend::forward(const OpArgs& a) {
    threads_prepare(threads_);
    const Node& n = a.node;
    switch (n.op) {
        case Op::Conv: {
            const ref::ConvInputs c = ref::conv_inputs(n.attrs, a.in, a.n_in);
            if (winograd_conv(a, c.bias, c.residual)) return;
            conv_forward(n.attrs, a.in[0], a.in[1], c.bias, c.residual, a.out, a.scratch, threads_);
            return;
        }
        case Op::BatchNorm:
            if (a.training) return batchnorm_train_forward(n.attrs, a.in, a.out, threads_);
            return batchnorm_inference(n.attrs, a.in, a.out);
        case Op::Relu: {
            const float* __restrict x = a.in[0].data;
            float* __restrict y = a.out.data;
            for (int64_t i = 0, e = a.out.numel(); i < e; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
            return;
        }
        case Op::Add: case Op::Sub: case Op::Mul: case Op::Div:
            if (binary_fast(n.op, a.in[0], a.in[1], a.out)) return;
            break;
        case Op::MixedPool:
            if (mixed_pool_tiled(n.attrs, a.in[0], a.in[1][0], a.out, threads_)) return;
            break;
        default:
            break;
    }
    RefBackend::forward(a);
}

void CpuBackend::backward(const GradArgs& g) {
    threads_prepare(threads_);
    const OpArgs& a = g.fwd;
    TensorView* gin = g.grad_in;
    const float* __restrict gy = g.grad_out.data;
    const int64_t count = g.grad_out.numel();
    switch (a.node.op) {
        case Op::Conv:
            if (a.node.attrs.fused_residual || a.node.attrs.fused_relu) break;  // the reference code says why not
            conv_backward(a.node.attrs, a.in[0], a.in[1], g.grad_out, gin[0], gin[1],
                          a.n_in > 2 ? gin[2].data : nullptr, a.scratch, threads_);
            return;
        case Op::BatchNorm:
            batchnorm_backward(a.node.attrs, a.in, g.grad_out, gin, a.training, threads_);
            return;
        case Op::Relu:
            if (gin[0].data) {
                const float* __restrict y = a.out.data;
                float* __restrict gx = gin[0].data;
                for (int64_t i = 0; i < count; ++i) gx[i] += y[i] > 0.0f ? gy[i] : 0.0f;
            }
            return;
        case Op::MixedPool:
            if (mixed_pool_tiled_backward(a.node.attrs, a.in[0], a.in[1][0], g.grad_out, gin[0], gin[1].data, threads_))
                return;
            break;
        case Op::Flatten:
            if (gin[0].data)
                for (int64_t i = 0; i < count; ++i) gin[0].data[i] += gy[i];
            return;
        case Op::Add:
            if (a.in[0].shape == a.out.shape && a.in[1].shape == a.out.shape) {  // residual connections
                for (int k = 0; k < 2; ++k)
                    if (gin[k].data)
                        for (int64_t i = 0; i < count; ++i) gin[k].data[i] += gy[i];
                return;
            }
            break;
        default:
            break;
    }
    RefBackend::backward(g);
}

}  // namespace engine::cpu
