// Convolution on oneDNN. Forward and backward let oneDNN choose the layouts (blocked ones run
// 2-3x faster than NCHW here) and reorder activations in and out around each primitive.
#include "onednn_kernels.h"

namespace engine::onednn {

namespace {

using dnnl::algorithm;
using dnnl::prop_kind;
constexpr auto f32 = memory::data_type::f32;

// Our weights [K, C/groups, KH, KW] are oihw, or goihw once the group is split off.
memory::desc weights_md(const Attrs& a, const Shape& w) {
    if (a.groups == 1) return plain_md(w);
    return memory::desc({a.groups, w[0] / a.groups, w[1], w[2], w[3]}, f32, tag::goihw);
}

memory::desc any_md(const memory::desc& md) { return memory::desc(md.dims(), f32, tag::any); }

// A plain tensor handed to a primitive that chose another layout: reordered into work per run.
class StagedInput {
public:
    void make(Context& ctx, const memory::desc& plain, const memory::desc& want, size_t& work) {
        user_ = wrap(ctx, plain);
        if (want == plain) return;
        in_ = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.eng, plain, ctx.eng, want));
        blocked_ = wrap(ctx, want);
        off_ = work;
        work += floats_of(want);
    }
    memory get(Context& ctx, const float* p) const {
        set(user_, p);
        if (!in_) return user_;
        set(blocked_, ctx.work.at(off_));
        ctx.exec(in_, {{DNNL_ARG_FROM, user_.get()}, {DNNL_ARG_TO, blocked_.get()}});
        return blocked_;
    }

private:
    memory user_, blocked_;
    dnnl::reorder in_;
    size_t off_ = 0;
};

// A primitive's output in the layout it chose, brought to a plain tensor after each run: copied,
// or with `add` added to what the tensor holds by a reorder with a sum post-op (oneDNN's backward
// primitives overwrite; our gradients accumulate).
class StagedOutput {
public:
    void make(Context& ctx, const memory::desc& have, const memory::desc& plain, bool add, size_t& work) {
        user_ = wrap(ctx, plain);
        if (have == plain && !add) return;  // the primitive writes the tensor itself
        dnnl::primitive_attr attr;
        if (add) {
            dnnl::post_ops sum;
            sum.append_sum(1.0f);
            attr.set_post_ops(sum);
        }
        out_ = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.eng, have, ctx.eng, plain, attr));
        result_ = wrap(ctx, have);
        off_ = work;
        work += floats_of(have);
    }
    // The memory the primitive writes in a run whose plain tensor is p.
    memory target(Context& ctx, float* p) const {
        set(user_, p);
        if (!out_) return user_;
        set(result_, ctx.work.at(off_));
        return result_;
    }
    void finish(Context& ctx) const {
        if (out_) ctx.exec(out_, {{DNNL_ARG_FROM, result_.get()}, {DNNL_ARG_TO, user_.get()}});
    }

private:
    memory user_, result_;
    dnnl::reorder out_;  // empty where the primitive writes the tensor itself
    size_t off_ = 0;
};

class ConvForward : public Kernel {
public:
    ConvForward(Context& ctx, NodeWeights& weights, const Spec& s) : has_bias_(s.n_in > 2) {
        const Attrs& a = s.node.attrs;
        const Shape &x = s.in[0], &w = s.in[1];
        const Window win = window_of(a, x, s.out, w[2], w[3]);
        const memory::desc xmd = plain_md(x), ymd = plain_md(s.out), wmd = weights_md(a, w);
        const memory::desc bmd = has_bias_ ? plain_md(s.in[2]) : memory::desc();
        dnnl::convolution_forward::desc d(prop_kind::forward_inference, algorithm::convolution_direct, any_md(xmd),
                                          any_md(wmd), bmd, any_md(ymd), win.strides, win.dilates, win.pad_l,
                                          win.pad_r);
        dnnl::convolution_forward::primitive_desc pd(d, ctx.eng);
        conv_ = dnnl::convolution_forward(pd);
        bias_ = has_bias_ ? wrap(ctx, bmd) : memory();
        size_t work = 0;
        src_.make(ctx, xmd, pd.src_desc(), work);
        dst_.make(ctx, pd.dst_desc(), ymd, /*add=*/false, work);
        ctx.work.reserve(work);
        if (pd.weights_desc() != wmd)
            packed_ = &weights.get(ctx, pd.weights_desc(), wmd);
        else
            user_wei_ = wrap(ctx, wmd);
    }

    void forward(Context& ctx, const OpArgs& a) override {
        const float* w = a.in[1].data;
        memory wei = user_wei_;
        if (packed_) {
            if (!a.weights_fixed || packed_->source != w) packed_->refresh(ctx, w);
            wei = packed_->mem;
        } else {
            set(user_wei_, w);
        }
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src_.get(ctx, a.in[0].data).get()},
                                   {DNNL_ARG_WEIGHTS, wei.get()},
                                   {DNNL_ARG_DST, dst_.target(ctx, a.out.data).get()}};
        int n = 3;
        if (has_bias_) {
            set(bias_, a.in[2].data);
            args[n++] = {DNNL_ARG_BIAS, bias_.get()};
        }
        ctx.exec(conv_, args, n);
        dst_.finish(ctx);
    }

private:
    bool has_bias_;
    dnnl::convolution_forward conv_;
    StagedInput src_;
    StagedOutput dst_;
    memory user_wei_, bias_;
    PackedWeights* packed_ = nullptr;  // null: oneDNN reads the weights as they are
};

// Gradients in the layouts oneDNN picks (blocked ones run several times faster than NCHW
// backward here), with the activations and weights reordered in and the gradients added back out.
class ConvBackward : public Kernel {
public:
    ConvBackward(Context& ctx, const Spec& s) : has_bias_(s.n_in > 2) {
        const Attrs& a = s.node.attrs;
        const Shape &x = s.in[0], &w = s.in[1];
        const Window win = window_of(a, x, s.out, w[2], w[3]);
        const memory::desc xmd = plain_md(x), ymd = plain_md(s.out), wmd = weights_md(a, w);
        const memory::desc bmd = has_bias_ ? plain_md(s.in[2]) : memory::desc();
        dnnl::convolution_forward::primitive_desc hint(
            dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, any_md(xmd),
                                            any_md(wmd), bmd, any_md(ymd), win.strides, win.dilates, win.pad_l,
                                            win.pad_r),
            ctx.eng);
        dnnl::convolution_backward_data::primitive_desc data(
            dnnl::convolution_backward_data::desc(algorithm::convolution_direct, any_md(xmd), any_md(wmd), any_md(ymd),
                                                  win.strides, win.dilates, win.pad_l, win.pad_r),
            ctx.eng, hint);
        dnnl::convolution_backward_weights::primitive_desc weights(
            dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, any_md(xmd), any_md(wmd), bmd,
                                                     any_md(ymd), win.strides, win.dilates, win.pad_l, win.pad_r),
            ctx.eng, hint);
        data_ = dnnl::convolution_backward_data(data);
        weights_ = dnnl::convolution_backward_weights(weights);
        size_t work = 0;
        gy_data_.make(ctx, ymd, data.diff_dst_desc(), work);
        w_.make(ctx, wmd, data.weights_desc(), work);
        gx_.make(ctx, data.diff_src_desc(), xmd, /*add=*/true, work);
        gy_shared_ = weights.diff_dst_desc() == data.diff_dst_desc();
        if (!gy_shared_) gy_weights_.make(ctx, ymd, weights.diff_dst_desc(), work);
        x_.make(ctx, xmd, weights.src_desc(), work);
        gw_.make(ctx, weights.diff_weights_desc(), wmd, /*add=*/true, work);
        if (has_bias_) gb_.make(ctx, bmd, bmd, /*add=*/true, work);
        ctx.work.reserve(work);
    }

    void backward(Context& ctx, const GradArgs& g) override {
        const OpArgs& a = g.fwd;
        float* gw = g.grad_in[1].data;
        float* gb = has_bias_ ? g.grad_in[2].data : nullptr;
        const memory gy = gy_data_.get(ctx, g.grad_out.data);
        if (g.grad_in[0].data) {
            ctx.exec(data_, {{DNNL_ARG_DIFF_DST, gy.get()},
                             {DNNL_ARG_WEIGHTS, w_.get(ctx, a.in[1].data).get()},
                             {DNNL_ARG_DIFF_SRC, gx_.target(ctx, g.grad_in[0].data).get()}});
            gx_.finish(ctx);
        }
        if (!gw && !gb) return;
        const memory gy_w = gy_shared_ ? gy : gy_weights_.get(ctx, g.grad_out.data);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, x_.get(ctx, a.in[0].data).get()},
                                   {DNNL_ARG_DIFF_DST, gy_w.get()},
                                   {DNNL_ARG_DIFF_WEIGHTS, gw_.target(ctx, gw).get()}};
        int n = 3;
        if (has_bias_) args[n++] = {DNNL_ARG_DIFF_BIAS, gb_.target(ctx, gb).get()};
        ctx.exec(weights_, args, n);  // both gradients land in work: a null one is not added anywhere
        if (gw) gw_.finish(ctx);
        if (gb) gb_.finish(ctx);
    }

private:
    bool has_bias_;
    bool gy_shared_ = false;  // both primitives read the output gradient in one layout
    dnnl::convolution_backward_data data_;
    dnnl::convolution_backward_weights weights_;
    StagedInput gy_data_, gy_weights_, w_, x_;
    StagedOutput gx_, gw_, gb_;
};

bool conv_fits(const Spec& s) { return s.in[0].rank == 4 && s.in[1].rank == 4 && s.out.rank == 4; }

}  // namespace

std::unique_ptr<Kernel> make_conv_forward(Context& ctx, NodeWeights& weights, const Spec& s) {
    if (!conv_fits(s)) return nullptr;
    return std::make_unique<ConvForward>(ctx, weights, s);
}

std::unique_ptr<Kernel> make_conv_backward(Context& ctx, const Spec& s) {
    if (!conv_fits(s)) return nullptr;
    return std::make_unique<ConvBackward>(ctx, s);
}

}  // namespace engine::onednn
