// Shared pieces of the oneDNN backend: the work buffer, execution, packed weights, descriptors.
#include <cstdlib>
#include <cstring>

#include "engine/error.h"
#include "onednn_kernels.h"

namespace engine::onednn {

Work::~Work() { std::free(data_); }

void Work::reserve(size_t floats) {
    if (floats <= size_) return;
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    check(p != nullptr, "onednn backend: cannot allocate " + std::to_string(bytes) + " bytes of work space");
    std::free(data_);
    data_ = p;
    size_ = floats;
}

void Context::exec(const dnnl::primitive& p, const dnnl_exec_arg_t* args, int n) {
    const dnnl_status_t st = dnnl_primitive_execute(p.get(), strm.get(), n, args);
    check(st == dnnl_success, "onednn backend: primitive execution failed (status " + std::to_string(int(st)) + ")");
}

void PackedWeights::refresh(Context& ctx, const float* w) {
    set(plain, w);
    ctx.exec(pack, {{DNNL_ARG_FROM, plain.get()}, {DNNL_ARG_TO, mem.get()}});
    source = w;
}

PackedWeights& NodeWeights::get(Context& ctx, const memory::desc& want, const memory::desc& plain) {
    for (auto& p : packs)
        if (p->md == want) return *p;
    auto p = std::make_unique<PackedWeights>();
    p->md = want;
    p->mem = memory(want, ctx.eng);
    p->plain = wrap(ctx, plain);
    p->pack = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.eng, plain, ctx.eng, want));
    packs.push_back(std::move(p));
    return *packs.back();
}

void Kernel::remember(const Spec& s) {
    in_.assign(s.in, s.in + s.n_in);
    out_ = s.out;
}

bool Kernel::matches(const OpArgs& a) const {
    if (a.n_in != int(in_.size()) || a.out.shape != out_) return false;
    for (int i = 0; i < a.n_in; ++i)
        if (a.in[i].shape != in_[i]) return false;
    return true;
}

memory::dims dims_of(const Shape& s) { return memory::dims(s.dims, s.dims + s.rank); }

tag plain_tag(int rank) {
    static const tag tags[] = {tag::undef, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde, tag::abcdef};
    check(rank >= 1 && rank <= 6, "onednn backend: unsupported tensor rank " + std::to_string(rank));
    return tags[rank];
}

memory::desc plain_md(const Shape& s) { return memory::desc(dims_of(s), memory::data_type::f32, plain_tag(s.rank)); }

memory::desc flat_md(int64_t numel) { return memory::desc({numel}, memory::data_type::f32, tag::a); }

memory wrap(Context& ctx, const memory::desc& md) { return memory(md, ctx.eng, DNNL_MEMORY_NONE); }

void set(const memory& m, const float* p) { m.set_data_handle(const_cast<float*>(p)); }

void accumulate(float* __restrict dst, const float* __restrict src, int64_t n) {
    // Shared between the threads oneDNN uses (a lone thread would leave the other spinning).
#pragma omp parallel for simd schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

size_t floats_of(const memory::desc& md) { return (md.get_size() + 63) / 64 * 64 / sizeof(float); }

Window window_of(const Attrs& a, const Shape& x, const Shape& y, int64_t kh, int64_t kw) {
    Window w;
    const int64_t k[2] = {kh, kw};
    for (int i = 0; i < 2; ++i) {
        const int64_t span = (k[i] - 1) * a.dilation[i] + 1;
        const int64_t needed = (y[2 + i] - 1) * a.stride[i] + span - x[2 + i] - a.pad[i];
        w.kernel.push_back(k[i]);
        w.strides.push_back(a.stride[i]);
        w.dilates.push_back(a.dilation[i] - 1);
        w.pad_l.push_back(a.pad[i]);
        w.pad_r.push_back(std::max(a.pad[2 + i], needed));
        w.extra = w.extra || needed > a.pad[2 + i];
    }
    return w;
}

std::unique_ptr<Kernel> make_forward(Context& ctx, NodeWeights& weights, const Spec& s) {
    std::unique_ptr<Kernel> k;
    switch (s.node.op) {
        case Op::Conv:
            k = make_conv_forward(ctx, weights, s);
            break;
        case Op::BatchNorm:
            k = make_batchnorm_forward(ctx, s);
            break;
        case Op::Relu:
            k = make_relu_forward(ctx, s);
            break;
        case Op::MaxPool:
        case Op::AvgPool:
            k = make_pool_forward(ctx, s);
            break;
        case Op::Add:
            k = make_add_forward(ctx, s);
            break;
        case Op::Gemm:
            k = make_gemm_forward(ctx, s);
            break;
        default:
            break;
    }
    if (k) k->remember(s);
    return k;
}

std::unique_ptr<Kernel> make_backward(Context& ctx, const Spec& s) {
    std::unique_ptr<Kernel> k;
    switch (s.node.op) {
        case Op::Conv:
            k = make_conv_backward(ctx, s);
            break;
        case Op::BatchNorm:
            k = make_batchnorm_backward(ctx, s);
            break;
        case Op::Relu:
            k = make_relu_backward(ctx, s);
            break;
        case Op::MaxPool:
        case Op::AvgPool:
            k = make_pool_backward(ctx, s);
            break;
        case Op::Add:
            k = make_add_backward(ctx, s);
            break;
        case Op::Gemm:
            k = make_gemm_backward(ctx, s);
            break;
        default:
            break;
    }
    if (k) k->remember(s);
    return k;
}

}  // namespace engine::onednn
