// BatchNorm, Relu, same-shape Add and Gemm on oneDNN, plain layouts.
#include <cmath>

#include "onednn_kernels.h"

namespace engine::onednn {

namespace {

using dnnl::algorithm;
using dnnl::normalization_flags;
using dnnl::prop_kind;

// ---- BatchNorm ----

normalization_flags bn_flags(bool training) {
    auto f = normalization_flags::use_scale | normalization_flags::use_shift;
    return training ? f : f | normalization_flags::use_global_stats;
}

bool bn_fits(const Spec& s) { return s.in[0].rank >= 2 && s.in[0].rank <= 5; }

// Inference normalises with the running statistics. Training normalises with the batch
// statistics oneDNN returns and updates the running ones from them: oneDNN's variance is the
// biased one, the running variance is unbiased (as PyTorch keeps it), with momentum.
class BatchNormForward : public Kernel {
public:
    BatchNormForward(Context& ctx, const Spec& s) : training_(s.training) {
        const memory::desc xmd = plain_md(s.in[0]), cmd = plain_md(s.in[1]);
        const prop_kind prop = training_ ? prop_kind::forward_training : prop_kind::forward_inference;
        bn_ = dnnl::batch_normalization_forward(dnnl::batch_normalization_forward::primitive_desc(
            dnnl::batch_normalization_forward::desc(prop, xmd, s.node.attrs.epsilon, bn_flags(training_)), ctx.eng));
        x_ = wrap(ctx, xmd), y_ = wrap(ctx, xmd);
        scale_ = wrap(ctx, cmd), shift_ = wrap(ctx, cmd), mean_ = wrap(ctx, cmd), var_ = wrap(ctx, cmd);
        channels_ = s.in[0][1];
        count_ = double(s.in[0].numel() / channels_);
        if (training_) batch_mean_.resize(channels_), batch_var_.resize(channels_);
    }

    void forward(Context& ctx, const OpArgs& a) override {
        set(x_, a.in[0].data), set(y_, a.out.data), set(scale_, a.in[1].data), set(shift_, a.in[2].data);
        float* run_mean = a.in[3].data;
        float* run_var = a.in[4].data;
        set(mean_, training_ ? batch_mean_.data() : run_mean);
        set(var_, training_ ? batch_var_.data() : run_var);
        ctx.exec(bn_, {{DNNL_ARG_SRC, x_.get()},
                       {DNNL_ARG_DST, y_.get()},
                       {DNNL_ARG_SCALE, scale_.get()},
                       {DNNL_ARG_SHIFT, shift_.get()},
                       {DNNL_ARG_MEAN, mean_.get()},
                       {DNNL_ARG_VARIANCE, var_.get()}});
        if (!training_) return;
        const double m = a.node.attrs.momentum;
        for (int64_t c = 0; c < channels_; ++c) {
            const double unbiased = count_ > 1 ? batch_var_[c] * count_ / (count_ - 1) : batch_var_[c];
            run_mean[c] = float((1 - m) * run_mean[c] + m * batch_mean_[c]);
            run_var[c] = float((1 - m) * run_var[c] + m * unbiased);
        }
    }

private:
    bool training_;
    dnnl::batch_normalization_forward bn_;
    memory x_, y_, scale_, shift_, mean_, var_;
    int64_t channels_;
    double count_;
    std::vector<float> batch_mean_, batch_var_;
};

// In training the gradient needs the batch statistics: a statistics-only forward recomputes
// them (the running ones must not move twice), so backward does not depend on forward's state.
class BatchNormBackward : public Kernel {
public:
    BatchNormBackward(Context& ctx, const Spec& s) : training_(s.training) {
        const memory::desc xmd = plain_md(s.in[0]), cmd = plain_md(s.in[1]);
        const float eps = s.node.attrs.epsilon;
        dnnl::batch_normalization_forward::primitive_desc hint(
            dnnl::batch_normalization_forward::desc(prop_kind::forward_training, xmd, eps, bn_flags(training_)),
            ctx.eng);
        if (training_) stats_ = dnnl::batch_normalization_forward(hint);
        bwd_ = dnnl::batch_normalization_backward(dnnl::batch_normalization_backward::primitive_desc(
            dnnl::batch_normalization_backward::desc(prop_kind::backward, xmd, xmd, eps, bn_flags(training_)), ctx.eng,
            hint));
        x_ = wrap(ctx, xmd), y_ = wrap(ctx, xmd), gx_ = wrap(ctx, xmd), gy_ = wrap(ctx, xmd);
        scale_ = wrap(ctx, cmd), shift_ = wrap(ctx, cmd), mean_ = wrap(ctx, cmd), var_ = wrap(ctx, cmd);
        gscale_ = wrap(ctx, cmd), gshift_ = wrap(ctx, cmd);
        channels_ = s.in[0][1];
        nx_ = s.in[0].numel();
        small_.resize(4 * channels_);  // batch mean, batch variance, d scale, d shift
        y_off_ = floats_of(xmd);
        ctx.work.reserve(2 * y_off_);
    }

    void backward(Context& ctx, const GradArgs& g) override {
        const OpArgs& a = g.fwd;
        float *mean = small_.data(), *var = mean + channels_, *gscale = var + channels_, *gshift = gscale + channels_;
        set(x_, a.in[0].data), set(scale_, a.in[1].data), set(shift_, a.in[2].data), set(gy_, g.grad_out.data);
        set(gx_, ctx.work.at(0)), set(gscale_, gscale), set(gshift_, gshift);
        if (training_) {
            set(mean_, mean), set(var_, var), set(y_, ctx.work.at(y_off_));
            ctx.exec(stats_, {{DNNL_ARG_SRC, x_.get()},
                              {DNNL_ARG_DST, y_.get()},
                              {DNNL_ARG_SCALE, scale_.get()},
                              {DNNL_ARG_SHIFT, shift_.get()},
                              {DNNL_ARG_MEAN, mean_.get()},
                              {DNNL_ARG_VARIANCE, var_.get()}});
        } else {
            set(mean_, a.in[3].data), set(var_, a.in[4].data);
        }
        ctx.exec(bwd_, {{DNNL_ARG_SRC, x_.get()},
                        {DNNL_ARG_MEAN, mean_.get()},
                        {DNNL_ARG_VARIANCE, var_.get()},
                        {DNNL_ARG_DIFF_DST, gy_.get()},
                        {DNNL_ARG_SCALE, scale_.get()},
                        {DNNL_ARG_SHIFT, shift_.get()},  // unused, but oneDNN 2.6 refuses to run without it
                        {DNNL_ARG_DIFF_SRC, gx_.get()},
                        {DNNL_ARG_DIFF_SCALE, gscale_.get()},
                        {DNNL_ARG_DIFF_SHIFT, gshift_.get()}});
        if (g.grad_in[0].data) accumulate(g.grad_in[0].data, ctx.work.at(0), nx_);
        if (g.grad_in[1].data) accumulate(g.grad_in[1].data, gscale, channels_);
        if (g.grad_in[2].data) accumulate(g.grad_in[2].data, gshift, channels_);
    }

private:
    bool training_;
    dnnl::batch_normalization_forward stats_;
    dnnl::batch_normalization_backward bwd_;
    memory x_, y_, gx_, gy_, scale_, shift_, mean_, var_, gscale_, gshift_;
    int64_t channels_, nx_;
    std::vector<float> small_;
    size_t y_off_;
};

// ---- Relu and Add: element-wise, on flat 1-D views ----

class ReluForward : public Kernel {
public:
    ReluForward(Context& ctx, const Spec& s) {
        const memory::desc md = flat_md(s.out.numel());
        relu_ = dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(prop_kind::forward_inference, algorithm::eltwise_relu, md, 0.0f), ctx.eng));
        x_ = wrap(ctx, md), y_ = wrap(ctx, md);
    }

    void forward(Context& ctx, const OpArgs& a) override {
        set(x_, a.in[0].data), set(y_, a.out.data);
        ctx.exec(relu_, {{DNNL_ARG_SRC, x_.get()}, {DNNL_ARG_DST, y_.get()}});
    }

private:
    dnnl::eltwise_forward relu_;
    memory x_, y_;
};

// The gradient passes where the output is positive (as the reference reads it).
class ReluBackward : public Kernel {
public:
    ReluBackward(Context& ctx, const Spec& s) : n_(s.out.numel()) {
        const memory::desc md = flat_md(n_);
        const auto alg = algorithm::eltwise_relu_use_dst_for_bwd;
        dnnl::eltwise_forward::primitive_desc hint(
            dnnl::eltwise_forward::desc(prop_kind::forward_training, alg, md, 0.0f), ctx.eng);
        bwd_ = dnnl::eltwise_backward(
            dnnl::eltwise_backward::primitive_desc(dnnl::eltwise_backward::desc(alg, md, md, 0.0f), ctx.eng, hint));
        y_ = wrap(ctx, md), gy_ = wrap(ctx, md), gx_ = wrap(ctx, md);
        ctx.work.reserve(floats_of(md));
    }

    void backward(Context& ctx, const GradArgs& g) override {
        if (!g.grad_in[0].data) return;
        set(y_, g.fwd.out.data), set(gy_, g.grad_out.data), set(gx_, ctx.work.at(0));
        ctx.exec(bwd_, {{DNNL_ARG_DST, y_.get()}, {DNNL_ARG_DIFF_DST, gy_.get()}, {DNNL_ARG_DIFF_SRC, gx_.get()}});
        accumulate(g.grad_in[0].data, ctx.work.at(0), n_);
    }

private:
    int64_t n_;
    dnnl::eltwise_backward bwd_;
    memory y_, gy_, gx_;
};

bool add_fits(const Spec& s) { return s.n_in == 2 && s.in[0] == s.out && s.in[1] == s.out; }

class AddForward : public Kernel {
public:
    AddForward(Context& ctx, const Spec& s) {
        const memory::desc md = flat_md(s.out.numel());
        add_ =
            dnnl::binary(dnnl::binary::primitive_desc(dnnl::binary::desc(algorithm::binary_add, md, md, md), ctx.eng));
        a_ = wrap(ctx, md), b_ = wrap(ctx, md), y_ = wrap(ctx, md);
    }

    void forward(Context& ctx, const OpArgs& a) override {
        set(a_, a.in[0].data), set(b_, a.in[1].data), set(y_, a.out.data);
        ctx.exec(add_, {{DNNL_ARG_SRC_0, a_.get()}, {DNNL_ARG_SRC_1, b_.get()}, {DNNL_ARG_DST, y_.get()}});
    }

private:
    dnnl::binary add_;
    memory a_, b_, y_;
};

// Both operands receive the output's gradient unchanged.
class AddBackward : public Kernel {
public:
    void backward(Context&, const GradArgs& g) override {
        for (int k = 0; k < 2; ++k)
            if (g.grad_in[k].data) accumulate(g.grad_in[k].data, g.grad_out.data, g.grad_out.numel());
    }
};

// ---- Gemm: y = op(A) op(B) + C on matmul, where alpha = 1 and beta = 1 ----
// Transposes are strides (tag ba), so every operand is read in place.

memory::desc matrix_md(int64_t rows, int64_t cols, bool transposed) {
    return memory::desc({rows, cols}, memory::data_type::f32, transposed ? tag::ba : tag::ab);
}

bool gemm_fits(const Spec& s) {
    const Attrs& a = s.node.attrs;
    if (a.alpha != 1.0f || s.in[0].rank != 2 || s.in[1].rank != 2) return false;
    return s.n_in == 2 || (a.beta == 1.0f && (s.in[2].rank == 1 || s.in[2].rank == 2));
}

struct GemmDims {
    int64_t m, n, k;
};

GemmDims gemm_dims(const Spec& s) { return {s.out[0], s.out[1], s.node.attrs.trans_a ? s.in[0][0] : s.in[0][1]}; }

// C as the [1 or M, 1 or N] bias matmul broadcasts.
memory::desc bias_md(const Shape& c) { return c.rank == 1 ? matrix_md(1, c[0], false) : matrix_md(c[0], c[1], false); }

dnnl::matmul make_matmul(Context& ctx, const memory::desc& a, const memory::desc& b, const memory::desc& bias,
                         const memory::desc& y, bool accumulate) {
    dnnl::primitive_attr attr;
    if (accumulate) {
        dnnl::post_ops ops;
        ops.append_sum(1.0f);
        attr.set_post_ops(ops);
    }
    return dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, bias, y), attr, ctx.eng));
}

class GemmForward : public Kernel {
public:
    GemmForward(Context& ctx, const Spec& s) : has_c_(s.n_in > 2) {
        const Attrs& at = s.node.attrs;
        const GemmDims d = gemm_dims(s);
        const memory::desc amd = matrix_md(d.m, d.k, at.trans_a), bmd = matrix_md(d.k, d.n, at.trans_b);
        const memory::desc cmd = has_c_ ? bias_md(s.in[2]) : memory::desc(), ymd = matrix_md(d.m, d.n, false);
        mm_ = make_matmul(ctx, amd, bmd, cmd, ymd, false);
        a_ = wrap(ctx, amd), b_ = wrap(ctx, bmd), y_ = wrap(ctx, ymd), c_ = has_c_ ? wrap(ctx, cmd) : memory();
    }

    void forward(Context& ctx, const OpArgs& a) override {
        set(a_, a.in[0].data), set(b_, a.in[1].data), set(y_, a.out.data);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, a_.get()}, {DNNL_ARG_WEIGHTS, b_.get()}, {DNNL_ARG_DST, y_.get()}};
        int n = 3;
        if (has_c_) {
            set(c_, a.in[2].data);
            args[n++] = {DNNL_ARG_BIAS, c_.get()};
        }
        ctx.exec(mm_, args, n);
    }

private:
    bool has_c_;
    dnnl::matmul mm_;
    memory a_, b_, y_, c_;
};

// dA = dY op(B)^T and dB = op(A)^T dY as matmuls that add into the gradients (sum post-op);
// dC sums dY over the dimensions C broadcasts along.
class GemmBackward : public Kernel {
public:
    GemmBackward(Context& ctx, const Spec& s) : d_(gemm_dims(s)), c_shape_(s.n_in > 2 ? s.in[2] : Shape{}) {
        const Attrs& at = s.node.attrs;
        const memory::desc gy = matrix_md(d_.m, d_.n, false);
        const memory::desc bt = matrix_md(d_.n, d_.k, !at.trans_b), ga = matrix_md(d_.m, d_.k, at.trans_a);
        grad_a_ = make_matmul(ctx, gy, bt, memory::desc(), ga, true);
        // oneDNN 2.6 has no fast matmul writing a transposed result: a transposed B takes its
        // gradient as dB^T = dY^T op(A) instead.
        b_first_ = at.trans_b;
        if (b_first_) {
            const memory::desc gyt = matrix_md(d_.n, d_.m, true), a = matrix_md(d_.m, d_.k, at.trans_a);
            grad_b_ = make_matmul(ctx, gyt, a, memory::desc(), matrix_md(d_.n, d_.k, false), true);
            gb_src_ = wrap(ctx, gyt), gb_wei_ = wrap(ctx, a), gb_ = wrap(ctx, matrix_md(d_.n, d_.k, false));
        } else {
            const memory::desc at_ = matrix_md(d_.k, d_.m, !at.trans_a);
            grad_b_ = make_matmul(ctx, at_, gy, memory::desc(), matrix_md(d_.k, d_.n, false), true);
            gb_src_ = wrap(ctx, at_), gb_wei_ = wrap(ctx, gy), gb_ = wrap(ctx, matrix_md(d_.k, d_.n, false));
        }
        gy_ = wrap(ctx, gy), bt_ = wrap(ctx, bt), ga_ = wrap(ctx, ga);
    }

    void backward(Context& ctx, const GradArgs& g) override {
        const OpArgs& a = g.fwd;
        set(gy_, g.grad_out.data);
        if (g.grad_in[0].data) {
            set(bt_, a.in[1].data), set(ga_, g.grad_in[0].data);
            ctx.exec(grad_a_, {{DNNL_ARG_SRC, gy_.get()}, {DNNL_ARG_WEIGHTS, bt_.get()}, {DNNL_ARG_DST, ga_.get()}});
        }
        if (g.grad_in[1].data) {
            set(b_first_ ? gb_src_ : gb_wei_, g.grad_out.data);
            set(b_first_ ? gb_wei_ : gb_src_, a.in[0].data);
            set(gb_, g.grad_in[1].data);
            ctx.exec(grad_b_,
                     {{DNNL_ARG_SRC, gb_src_.get()}, {DNNL_ARG_WEIGHTS, gb_wei_.get()}, {DNNL_ARG_DST, gb_.get()}});
        }
        if (a.n_in > 2 && g.grad_in[2].data) {
            const bool rows = c_shape_.rank == 2 && c_shape_[0] != 1;
            const bool cols = c_shape_.rank == 2 ? c_shape_[1] != 1 : c_shape_[0] != 1;
            const int64_t stride = cols ? d_.n : 1;
            float* gc = g.grad_in[2].data;
            for (int64_t i = 0; i < d_.m; ++i)
                for (int64_t j = 0; j < d_.n; ++j)
                    gc[(rows ? i : 0) * stride + (cols ? j : 0)] += g.grad_out.data[i * d_.n + j];
        }
    }

private:
    GemmDims d_;
    Shape c_shape_;
    dnnl::matmul grad_a_, grad_b_;
    bool b_first_;  // grad_b_ computes dB^T = dY^T op(A)
    memory gy_, bt_, ga_, gb_src_, gb_wei_, gb_;
};

}  // namespace

std::unique_ptr<Kernel> make_batchnorm_forward(Context& ctx, const Spec& s) {
    return bn_fits(s) ? std::make_unique<BatchNormForward>(ctx, s) : nullptr;
}

std::unique_ptr<Kernel> make_batchnorm_backward(Context& ctx, const Spec& s) {
    return bn_fits(s) ? std::make_unique<BatchNormBackward>(ctx, s) : nullptr;
}

std::unique_ptr<Kernel> make_relu_forward(Context& ctx, const Spec& s) {
    return s.out.numel() > 0 ? std::make_unique<ReluForward>(ctx, s) : nullptr;
}

std::unique_ptr<Kernel> make_relu_backward(Context& ctx, const Spec& s) {
    return s.out.numel() > 0 ? std::make_unique<ReluBackward>(ctx, s) : nullptr;
}

std::unique_ptr<Kernel> make_add_forward(Context& ctx, const Spec& s) {
    return add_fits(s) ? std::make_unique<AddForward>(ctx, s) : nullptr;
}

std::unique_ptr<Kernel> make_add_backward(Context&, const Spec& s) {
    return add_fits(s) ? std::make_unique<AddBackward>() : nullptr;
}

std::unique_ptr<Kernel> make_gemm_forward(Context& ctx, const Spec& s) {
    return gemm_fits(s) ? std::make_unique<GemmForward>(ctx, s) : nullptr;
}

std::unique_ptr<Kernel> make_gemm_backward(Context& ctx, const Spec& s) {
    return gemm_fits(s) ? std::make_unique<GemmBackward>(ctx, s) : nullptr;
}

}  // namespace engine::onednn
