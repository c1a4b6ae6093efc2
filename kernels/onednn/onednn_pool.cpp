// MaxPool and AvgPool on oneDNN's dilated pooling (pooling_v2), plain NCHW.
#include "onednn_kernels.h"

namespace engine::onednn {

namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

algorithm pool_algorithm(const Node& n) {
    if (n.op == Op::MaxPool) return algorithm::pooling_max;
    return n.attrs.count_include_pad ? algorithm::pooling_avg_include_padding : algorithm::pooling_avg_exclude_padding;
}

// oneDNN's divisor for averages differs from ours where the window is dilated (we count the
// padded span) or, counting padding, where ceil_mode reaches past it (we stop at the padding).
bool pool_fits(const Spec& s, const Window& w) {
    if (s.in[0].rank != 4 || s.out.rank != 4) return false;
    if (s.node.op == Op::MaxPool) return true;
    const Attrs& a = s.node.attrs;
    if (a.dilation[0] != 1 || a.dilation[1] != 1) return false;
    return !(a.count_include_pad && w.extra);
}

Window pool_window(const Spec& s) {
    const Attrs& a = s.node.attrs;
    return window_of(a, s.in[0], s.out, a.kernel[0], a.kernel[1]);
}

dnnl::pooling_v2_forward::desc forward_desc(prop_kind prop, const Spec& s, const Window& w) {
    return dnnl::pooling_v2_forward::desc(prop, pool_algorithm(s.node), plain_md(s.in[0]), plain_md(s.out), w.strides,
                                          w.kernel, w.dilates, w.pad_l, w.pad_r);
}

class PoolForward : public Kernel {
public:
    PoolForward(Context& ctx, const Spec& s, const Window& w) {
        pool_ = dnnl::pooling_v2_forward(
            dnnl::pooling_v2_forward::primitive_desc(forward_desc(prop_kind::forward_inference, s, w), ctx.eng));
        x_ = wrap(ctx, plain_md(s.in[0])), y_ = wrap(ctx, plain_md(s.out));
    }

    void forward(Context& ctx, const OpArgs& a) override {
        set(x_, a.in[0].data);
        set(y_, a.out.data);
        ctx.exec(pool_, {{DNNL_ARG_SRC, x_.get()}, {DNNL_ARG_DST, y_.get()}});
    }

private:
    dnnl::pooling_v2_forward pool_;
    memory x_, y_;
};

// Max pooling's backward needs the workspace (where each maximum was) that only a training
// forward writes. Inference forwards stay lean, so backward redoes the forward with the
// workspace (owned here, per node and batch size) before it propagates.
class PoolBackward : public Kernel {
public:
    PoolBackward(Context& ctx, const Spec& s, const Window& w) : max_(s.node.op == Op::MaxPool) {
        const memory::desc xmd = plain_md(s.in[0]), ymd = plain_md(s.out);
        dnnl::pooling_v2_forward::primitive_desc hint(forward_desc(prop_kind::forward_training, s, w), ctx.eng);
        bwd_ = dnnl::pooling_v2_backward(dnnl::pooling_v2_backward::primitive_desc(
            dnnl::pooling_v2_backward::desc(pool_algorithm(s.node), xmd, ymd, w.strides, w.kernel, w.dilates, w.pad_l,
                                            w.pad_r),
            ctx.eng, hint));
        if (max_) {
            fwd_ = dnnl::pooling_v2_forward(hint);
            ws_ = memory(hint.workspace_desc(), ctx.eng);
        }
        x_ = wrap(ctx, xmd), gx_ = wrap(ctx, xmd), y_ = wrap(ctx, ymd), gy_ = wrap(ctx, ymd);
        nx_ = s.in[0].numel();
        y_off_ = floats_of(xmd);
        ctx.work.reserve(y_off_ + floats_of(ymd));
    }

    void backward(Context& ctx, const GradArgs& g) override {
        if (!g.grad_in[0].data) return;
        set(gy_, g.grad_out.data);
        set(gx_, ctx.work.at(0));
        if (max_) {
            set(x_, g.fwd.in[0].data);
            set(y_, ctx.work.at(y_off_));
            ctx.exec(fwd_, {{DNNL_ARG_SRC, x_.get()}, {DNNL_ARG_DST, y_.get()}, {DNNL_ARG_WORKSPACE, ws_.get()}});
            ctx.exec(bwd_,
                     {{DNNL_ARG_DIFF_DST, gy_.get()}, {DNNL_ARG_DIFF_SRC, gx_.get()}, {DNNL_ARG_WORKSPACE, ws_.get()}});
        } else {
            ctx.exec(bwd_, {{DNNL_ARG_DIFF_DST, gy_.get()}, {DNNL_ARG_DIFF_SRC, gx_.get()}});
        }
        accumulate(g.grad_in[0].data, ctx.work.at(0), nx_);
    }

private:
    bool max_;
    dnnl::pooling_v2_forward fwd_;
    dnnl::pooling_v2_backward bwd_;
    memory x_, gx_, y_, gy_, ws_;
    int64_t nx_;
    size_t y_off_;
};

}  // namespace

std::unique_ptr<Kernel> make_pool_forward(Context& ctx, const Spec& s) {
    const Window w = pool_window(s);
    if (!pool_fits(s, w)) return nullptr;
    return std::make_unique<PoolForward>(ctx, s, w);
}

std::unique_ptr<Kernel> make_pool_backward(Context& ctx, const Spec& s) {
    const Window w = pool_window(s);
    if (!pool_fits(s, w)) return nullptr;
    return std::make_unique<PoolBackward>(ctx, s, w);
}

}  // namespace engine::onednn
