#include "native_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "native_batchnorm.h"
#include "native_conv.h"
#include "native_conv_backward.h"
#include "native_gemm.h"
#include "native_linear.h"
#include "native_pool.h"
#include "native_relu_gradient.h"
#include "native_threads.h"

namespace engine::native {

namespace {

// f(begin, end) over [0, n), split between threads where n is large enough to pay for waking them:
// for the element-wise ops of training, which would otherwise run on one thread while the others wait.
template <class F>
void parallel_ranges(int64_t n, int threads, const F& f) {
    constexpr int64_t kMinParallel = int64_t(1) << 15;
    if (threads <= 1 || n < kMinParallel) return f(int64_t(0), n);
#pragma omp parallel num_threads(threads)
    {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        f(n * t / nt, n * (t + 1) / nt);
    }
}

// g += gy over n elements, or g = gy where g holds no gradient yet.
void accumulate(float* g, const float* gy, int64_t n, bool fresh, int threads) {
    parallel_ranges(n, threads, [g, gy, fresh](int64_t i0, int64_t i1) {
        float* __restrict out = g;
        const float* __restrict in = gy;
        if (fresh)
            std::copy(in + i0, in + i1, out + i0);
        else
            for (int64_t i = i0; i < i1; ++i) out[i] += in[i];
    });
}

bool is_fresh(const GradArgs& g, int k) { return (g.fresh >> k) & 1u; }

// The gradient through a ReLU whose output is y: gx += (y > 0 ? gy : 0), or gx = where fresh.
void relu_backward(float* gx, const float* y, const float* gy, int64_t n, bool fresh, int threads) {
    parallel_ranges(n, threads, [y, gx, gy, fresh](int64_t i0, int64_t i1) {
        relu_gradient_row(gx + i0, y + i0, gy + i0, i1 - i0, fresh);
    });
}

// Both input gradients of a same-shape Add from one pass over gy (and, with a fused ReLU, its output
// y): g0, g1 += (y > 0 ? gy : 0) or gy, each written instead where fresh.
void residual_add_backward(float* g0, bool fresh0, float* g1, bool fresh1, const float* y, const float* gy, int64_t n,
                           int threads) {
    parallel_ranges(n, threads, [=](int64_t i0, int64_t i1) {
        float* __restrict a = g0;
        float* __restrict b = g1;
        const float* __restrict out = y;
        const float* __restrict g = gy;
        for (int64_t i = i0; i < i1; ++i) {  // the flags are loop-invariant: GCC unswitches them
            const float v = out && !(out[i] > 0.0f) ? 0.0f : g[i];
            a[i] = fresh0 ? v : a[i] + v;
            b[i] = fresh1 ? v : b[i] + v;
        }
    });
}

// Zeroes the gradients of inputs first_input..end_input (all after first_input by default) that hold
// nothing yet, for code that only adds to them.
void zero_fresh(const GradArgs& g, int threads, int first_input, int end_input = 32) {
    for (int k = first_input; k < std::min(end_input, g.fwd.n_in); ++k)
        if (is_fresh(g, k) && g.grad_in[k].data)
            parallel_ranges(g.grad_in[k].numel(), threads,
                            [p = g.grad_in[k].data](int64_t i0, int64_t i1) { std::fill(p + i0, p + i1, 0.0f); });
}

void binary_span(Op op, const float* __restrict x, const float* __restrict z, int64_t step, float* __restrict out,
                 int64_t n) {
    switch (op) {
        case Op::Add:
            for (int64_t i = 0; i < n; ++i) out[i] = x[i] + z[i * step];
            break;
        case Op::Sub:
            for (int64_t i = 0; i < n; ++i) out[i] = x[i] - z[i * step];
            break;
        case Op::Mul:
            for (int64_t i = 0; i < n; ++i) out[i] = x[i] * z[i * step];
            break;
        default:
            for (int64_t i = 0; i < n; ++i) out[i] = x[i] / z[i * step];
            break;
    }
}

// True when b holds one value per channel of an NCHW a: [C,1,1] or [1,C,1,1] (input normalisation).
bool per_channel(const Shape& a, const Shape& b) {
    if (a.rank != 4 || b.numel() != a[1] || b.rank < 3 || b.rank > 4) return false;
    return b[b.rank - 1] == 1 && b[b.rank - 2] == 1 && b[b.rank - 3] == a[1];
}

PoolKind pool_kind(Op op) { return op == Op::MaxPool ? PoolKind::Max : PoolKind::Average; }

// Element-wise binary op when b is a scalar, has a's shape or one value per channel; false when
// another broadcast is needed.
bool binary_fast(Op op, TensorView a, TensorView b, TensorView y, int threads) {
    if (a.shape != y.shape) return false;
    if (b.numel() == 1 || b.shape == y.shape) {
        const int64_t step = b.numel() == 1 ? 0 : 1;
        parallel_ranges(y.numel(), threads, [&](int64_t i0, int64_t i1) {
            binary_span(op, a.data + i0, b.data + i0 * step, step, y.data + i0, i1 - i0);
        });
        return true;
    }
    if (!per_channel(a.shape, b.shape)) return false;
    const int64_t C = a.shape[1], inner = a.shape[2] * a.shape[3];
    for (int64_t p = 0; p < a.shape[0] * C; ++p)
        binary_span(op, a.data + p * inner, b.data + p % C, 0, y.data + p * inner, inner);
    return true;
}

// The classifier heads' Gemm: y = A op(B) + c with A [M, K] as stored, alpha 1 and, if c is
// given, beta 1 and c one value per column. False where the reference code must run it.
bool plain_gemm(const Attrs& a, const OpArgs& args) {
    if (a.trans_a || a.alpha != 1.0f || args.in[0].shape.rank != 2 || args.in[1].shape.rank != 2) return false;
    if (args.n_in < 3) return true;
    const Shape& c = args.in[2].shape;
    return a.beta == 1.0f && c.rank == 1 && c[0] == args.out.shape[1];
}

void gemm_forward(const OpArgs& args, Isa isa, int threads) {
    const Attrs& a = args.node.attrs;
    const int64_t M = args.out.shape[0], N = args.out.shape[1], K = args.in[0].shape[1];
    const float* c = args.n_in > 2 ? args.in[2].data : nullptr;
    float* y = args.out.data;
    if (a.trans_b && N <= 256)  // the classifier heads (native_linear.h)
        return linear_rows(args.in[0].data, args.in[1].data, c, y, M, N, K, isa, threads);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) y[i * N + j] = c ? c[j] : 0.0f;
    gemm_nn(M, N, K, args.in[0].data, K, args.in[1].data, N, y, N);
}

// dA += dY op(B)^T, d op(B) += A^T dY, dc += column sums of dY.
void gemm_backward(const GradArgs& g) {
    const OpArgs& args = g.fwd;
    const bool tb = args.node.attrs.trans_b;
    const int64_t M = args.out.shape[0], N = args.out.shape[1], K = args.in[0].shape[1];
    const float *A = args.in[0].data, *B = args.in[1].data, *gy = g.grad_out.data;
    if (float* gA = g.grad_in[0].data) {
        if (tb)
            gemm_nn(M, K, N, gy, N, B, K, gA, K);
        else
            gemm_nt(M, K, N, gy, N, B, N, gA, K);
    }
    if (float* gB = g.grad_in[1].data) {
        if (tb)
            gemm_tn(N, K, M, gy, N, A, K, gB, K);  // dB [N, K] = dY^T A
        else
            gemm_tn(K, N, M, A, K, gy, N, gB, N);  // dB [K, N] = A^T dY
    }
    if (args.n_in > 2 && g.grad_in[2].data)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) g.grad_in[2][j] += gy[i * N + j];
}

}  // namespace

NativeOptions NativeOptions::from_env() { return {kernel_mode_from_env(), isa_of_this_cpu()}; }

NativeBackend::NativeBackend(int threads, NativeOptions options)
    : threads_(threads > 0 ? threads : omp_get_num_procs()), options_(options) {
    if (options_.isa == Isa::avx512 && !cpu_has_avx512()) options_.isa = Isa::avx2;
    threads_prepare(threads_);
}

size_t NativeBackend::scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const {
    if (node.op != Op::Conv) return 0;
    size_t floats = conv_backward_scratch(node.attrs, in[0], in[1], out, options_.isa, threads_);
    // Whichever kernel prepare() picks: its working space + room to transform weights that may change.
    for (ConvKernel k : conv_kernel_candidates(node.attrs, in[0], in[1], out, options_.isa))
        floats = std::max(floats, conv_kernel_work_floats(k, node.attrs, in[0], in[1], out, threads_) +
                                      conv_kernel_weights_floats(k, node.attrs, in[0], in[1], out));
    return floats;
}

void NativeBackend::prepare(const Node& node, const Shape* in, int, const Shape& out) {
    transformed_.erase(&node);
    normalisation_.erase(&node);
    if (node.op != Op::Conv) return;
    const Attrs& a = node.attrs;
    ConvKernel k = conv_kernel_fixed(a, in[0], in[1], out);
    if (!forced_.empty()) {
        const auto c = conv_kernel_candidates(a, in[0], in[1], out, options_.isa);
        for (auto f = forced_.rbegin(); f != forced_.rend(); ++f)
            if (std::find(c.begin(), c.end(), *f) != c.end()) k = *f;
    } else if (options_.kernels == KernelMode::tuned) {
        k = conv_kernel_tuned(a, in[0], in[1], out, options_.isa);
    }
    kernel_[&node] = k;
}

template <class Transform>
const float* NativeBackend::transformed(const OpArgs& a, size_t floats, float* scratch_spot,
                                        const Transform& transform) {
    const TensorView& w = a.in[1];
    if (!a.weights_fixed) {  // the weights may have changed since the last run
        transform(w, scratch_spot);
        return scratch_spot;
    }
    TransformedWeights& t = transformed_[&a.node];
    if (t.data.empty() || t.source != w.data) {
        t.source = w.data;
        t.data.resize(floats);
        transform(w, t.data.data());
    }
    return t.data.data();
}

namespace {
bool relu_without_residual(const Attrs& a) { return a.fused_relu && !a.fused_residual; }
}  // namespace

float* NativeBackend::record_normalisation(const OpArgs& a) {
    if (!relu_without_residual(a.node.attrs)) return nullptr;
    Normalisation& n = normalisation_[&a.node];
    n.k_shift.resize(size_t(2 * a.in[0].shape[1]));
    n.valid = true;
    return n.k_shift.data();
}

const float* NativeBackend::recorded_normalisation(const OpArgs& a) const {
    const auto it = normalisation_.find(&a.node);
    return it != normalisation_.end() && it->second.valid ? it->second.k_shift.data() : nullptr;
}

void NativeBackend::conv(const OpArgs& a, const float* bias, const float* residual) {
    const TensorView &x = a.in[0], &w = a.in[1];
    const Attrs& attrs = a.node.attrs;
    const auto chosen = kernel_.find(&a.node);
    const ConvKernel k =
        chosen != kernel_.end() ? chosen->second : conv_kernel_fixed(attrs, x.shape, w.shape, a.out.shape);
    const size_t work = conv_kernel_work_floats(k, attrs, x.shape, w.shape, a.out.shape, threads_);
    const size_t floats = conv_kernel_weights_floats(k, attrs, x.shape, w.shape, a.out.shape);
    const float* u = nullptr;
    if (floats)
        u = transformed(a, floats, a.scratch + work, [&](TensorView w, float* out) {
            conv_kernel_transform(k, attrs, x.shape, w, a.out.shape, out, threads_);
        });
    last_kernel_ = k;
    conv_kernel_forward(k, attrs, x, w, u, bias, residual, a.out, a.scratch, threads_);
}

void NativeBackend::forward(const OpArgs& a) {
    threads_prepare(threads_);
    const Node& n = a.node;
    switch (n.op) {
        case Op::Conv: {
            const ref::ConvInputs c = ref::conv_inputs(n.attrs, a.in, a.n_in);
            return conv(a, c.bias, c.residual);
        }
        case Op::BatchNorm:
            if (a.training) return batchnorm_train_forward(n.attrs, a.in, a.out, record_normalisation(a), threads_);
            if (const auto it = normalisation_.find(&n); it != normalisation_.end()) it->second.valid = false;
            return batchnorm_inference(n.attrs, a.in, a.out);
        case Op::Relu:
            parallel_ranges(a.out.numel(), threads_, [x = a.in[0].data, y = a.out.data](int64_t i0, int64_t i1) {
                const float* __restrict in = x;
                float* __restrict out = y;
                for (int64_t i = i0; i < i1; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
            });
            return;
        case Op::Add:
            if (n.attrs.fused_relu) {  // training plans fuse only same-shape Adds (fuse_training.h)
                check(a.in[0].shape == a.out.shape && a.in[1].shape == a.out.shape,
                      "native backend: node '" + n.name + "' adds with broadcast and a fused ReLU");
                parallel_ranges(a.out.numel(), threads_,
                                [x = a.in[0].data, z = a.in[1].data, y = a.out.data](int64_t i0, int64_t i1) {
                                    for (int64_t i = i0; i < i1; ++i) y[i] = std::max(x[i] + z[i], 0.0f);
                                });
                return;
            }
            [[fallthrough]];
        case Op::Sub:
        case Op::Mul:
        case Op::Div:
            if (binary_fast(n.op, a.in[0], a.in[1], a.out, threads_)) return;
            break;
        case Op::MixedPool:
            if (pool_tiled(n.attrs, a.in[0], PoolKind::Mixed, a.in[1][0], a.out, threads_)) return;
            break;
        case Op::MaxPool:
        case Op::AvgPool:
            if (pool_tiled(n.attrs, a.in[0], pool_kind(n.op), 0.0f, a.out, threads_)) return;
            break;
        case Op::Gemm:
            if (!plain_gemm(n.attrs, a)) break;
            return gemm_forward(a, options_.isa, threads_);
        default:
            break;
    }
    RefBackend::forward(a);
}

void NativeBackend::backward(const GradArgs& g) {
    threads_prepare(threads_);
    const OpArgs& a = g.fwd;
    TensorView* gin = g.grad_in;
    const float* __restrict gy = g.grad_out.data;
    const int64_t count = g.grad_out.numel();
    const bool fresh0 = is_fresh(g, 0);
    // The data gradient (input 0) of the paths below is written where fresh; other inputs (weights,
    // usually zeroed up front by the plan) are zeroed here if fresh, and added to.
    switch (a.node.op) {
        case Op::Conv:
            if (a.node.attrs.fused_residual || a.node.attrs.fused_relu) break;  // the reference code says why not
            zero_fresh(g, threads_, 1);
            conv_backward(a.node.attrs, a.in[0], a.in[1], g.grad_out, gin[0], fresh0, gin[1],
                          a.n_in > 2 ? gin[2].data : nullptr, a.scratch, options_.isa, threads_);
            return;
        case Op::BatchNorm:
            zero_fresh(g, threads_, 1, 3);  // scale and bias; the residual's (input 5) is written where fresh
            batchnorm_backward(a.node.attrs, a.in, a.out, g.grad_out, gin, fresh0, is_fresh(g, 5), a.training,
                               a.training ? recorded_normalisation(a) : nullptr, threads_);
            return;
        case Op::Relu:
            if (gin[0].data) relu_backward(gin[0].data, a.out.data, gy, count, fresh0, threads_);
            return;
        case Op::Flatten:
            if (gin[0].data) accumulate(gin[0].data, gy, count, fresh0, threads_);
            return;
        case Op::Add:
            if (a.in[0].shape == a.out.shape && a.in[1].shape == a.out.shape) {  // residual connections
                if (gin[0].data && gin[1].data && gin[0].data != gin[1].data) {
                    residual_add_backward(gin[0].data, is_fresh(g, 0), gin[1].data, is_fresh(g, 1),
                                          a.node.attrs.fused_relu ? a.out.data : nullptr, gy, count, threads_);
                    return;
                }
                for (int k = 0; k < 2; ++k) {
                    if (!gin[k].data) continue;
                    if (a.node.attrs.fused_relu)
                        relu_backward(gin[k].data, a.out.data, gy, count, is_fresh(g, k), threads_);
                    else
                        accumulate(gin[k].data, gy, count, is_fresh(g, k), threads_);
                }
                return;
            }
            break;
        default:
            break;
    }
    zero_fresh(g, threads_, 0);  // everything below adds
    switch (a.node.op) {
        case Op::MixedPool:
            if (pool_tiled_backward(a.node.attrs, a.in[0], PoolKind::Mixed, a.in[1][0], g.grad_out, gin[0], gin[1].data,
                                    threads_))
                return;
            break;
        case Op::MaxPool:
        case Op::AvgPool:
            if (!gin[0].data || pool_tiled_backward(a.node.attrs, a.in[0], pool_kind(a.node.op), 0.0f, g.grad_out,
                                                    gin[0], nullptr, threads_))
                return;
            break;
        case Op::Gemm:
            if (!plain_gemm(a.node.attrs, a)) break;
            return gemm_backward(g);
        default:
            break;
    }
    RefBackend::backward(g);
}

}  // namespace engine::native
