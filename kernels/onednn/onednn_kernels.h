// Internals of the oneDNN backend: the context every kernel runs in, and one Kernel object per
// (node, batch size, direction) that owns its primitives and memory descriptors.
#pragma once
#include <dnnl.hpp>

#include <memory>
#include <vector>

#include "engine/backend.h"

namespace engine::onednn {

using dnnl::memory;
using tag = memory::format_tag;

// One growable 64-byte aligned buffer that kernels share for blocked copies and gradient
// temporaries (nodes run one after another). Kernels reserve at creation, so running never grows it.
class Work {
public:
    ~Work();
    void reserve(size_t floats);
    float* at(size_t offset) const { return data_ + offset; }

private:
    float* data_ = nullptr;
    size_t size_ = 0;
};

struct Context {
    dnnl::engine eng{dnnl::engine::kind::cpu, 0};
    dnnl::stream strm{eng};
    Work work;
    // Executes through the C API with the arguments on the stack (the C++ overload builds a map).
    void exec(const dnnl::primitive& p, const dnnl_exec_arg_t* args, int n);
    void exec(const dnnl::primitive& p, std::initializer_list<dnnl_exec_arg_t> args) {
        exec(p, args.begin(), int(args.size()));
    }
};

// A node's weights in the layout a convolution picked, shared by that node's kernels of every
// batch size. Packed on a plan's first run (prepare() sees shapes, not data), then again only when
// the weights move or the plan does not hold them fixed (OpArgs::weights_fixed).
struct PackedWeights {
    memory::desc md;
    memory mem;    // owned by oneDNN
    memory plain;  // wraps the node's weights (handle set per refresh)
    dnnl::reorder pack;
    const float* source = nullptr;  // weights last packed from (null: not yet)
    void refresh(Context& ctx, const float* w);
};

struct NodeWeights {
    std::vector<std::unique_ptr<PackedWeights>> packs;
    PackedWeights& get(Context& ctx, const memory::desc& want, const memory::desc& plain);
};

// What a kernel is made for: the node, its input and output shapes, and the mode.
struct Spec {
    const Node& node;
    const Shape* in;
    int n_in;
    const Shape& out;
    bool training;
};

class Kernel {
public:
    virtual ~Kernel() = default;
    virtual void forward(Context& ctx, const OpArgs& a) {}
    virtual void backward(Context& ctx, const GradArgs& g) {}
    void remember(const Spec& s);
    bool matches(const OpArgs& a) const;  // same shapes as made for (a cache key can outlive its node)

protected:
    std::vector<Shape> in_;
    Shape out_;
};

// nullptr where oneDNN does not fit the node (the backend then runs the reference code).
std::unique_ptr<Kernel> make_forward(Context& ctx, NodeWeights& weights, const Spec& s);
std::unique_ptr<Kernel> make_backward(Context& ctx, const Spec& s);

// Per op (onednn_conv.cpp, onednn_pool.cpp, onednn_layers.cpp).
std::unique_ptr<Kernel> make_conv_forward(Context& ctx, NodeWeights& weights, const Spec& s);
std::unique_ptr<Kernel> make_conv_backward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_pool_forward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_pool_backward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_batchnorm_forward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_batchnorm_backward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_relu_forward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_relu_backward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_add_forward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_add_backward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_gemm_forward(Context& ctx, const Spec& s);
std::unique_ptr<Kernel> make_gemm_backward(Context& ctx, const Spec& s);

// Helpers.
memory::dims dims_of(const Shape& s);
tag plain_tag(int rank);  // a, ab, abc, ... (NCHW order)
memory::desc plain_md(const Shape& s);
memory::desc flat_md(int64_t numel);                // 1-D view for element-wise ops
memory wrap(Context& ctx, const memory::desc& md);  // no buffer: the handle is set before each run
void set(const memory& m, const float* p);
void accumulate(float* dst, const float* src, int64_t n);
size_t floats_of(const memory::desc& md);  // rounded up to 64 bytes, for offsets in Work

// Spatial geometry in oneDNN's terms (dilation 0 = dense). The right/bottom padding is what
// makes oneDNN's floor formula give our output size (ceil_mode adds to it): `extra` says how
// much was added beyond our padding.
struct Window {
    memory::dims kernel, strides, dilates, pad_l, pad_r;
    bool extra = false;
};
Window window_of(const Attrs& a, const Shape& x, const Shape& y, int64_t kh, int64_t kw);

}  // namespace engine::onednn
