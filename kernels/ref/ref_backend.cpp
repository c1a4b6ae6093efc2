#include <cstring>
#include <functional>

#include "engine/error.h"
#include "ref_kernels.h"

namespace engine::ref {

uint64_t node_seed(const Node& node, uint64_t step_seed) {
    return step_seed * 0x100000001B3ull ^ std::hash<std::string>{}(node.name);
}

namespace {

// A ReLU or residual Add folded into BatchNorm or Add by a training plan (fuse_training.h) is for
// backends that implement it; the reference loops do not.
void check_no_training_fusion(const Node& n) {
    if ((n.attrs.fused_relu || n.attrs.fused_residual) && n.op != Op::Conv)
        fail("ref backend: node '" + n.name + "' (" + op_name(n.op) + ") has a fused ReLU or residual");
}

}  // namespace

void RefBackend::forward(const OpArgs& a) {
    const Node& n = a.node;
    check_no_training_fusion(n);
    const TensorView* in = a.in;
    TensorView y = a.out;
    switch (n.op) {
        case Op::Conv: {
            const ConvInputs c = conv_inputs(n.attrs, in, a.n_in);
            conv_forward(n.attrs, in[0], in[1], c.bias, y);
            if (c.residual || n.attrs.fused_relu) conv_epilogue(n.attrs, c.residual, y);
            return;
        }
        case Op::BatchNorm:
            batchnorm_forward(n.attrs, in[0], in[1], in[2], in[3], in[4], y, a.training);
            return;
        case Op::Relu:
            for (int64_t i = 0; i < y.numel(); ++i) y[i] = in[0][i] > 0 ? in[0][i] : 0.0f;
            return;
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::Div:
            binary_forward(n.op, in[0], in[1], y);
            return;
        case Op::Pad:
            pad_forward(n.attrs, in[0], y);
            return;
        case Op::MaxPool:
        case Op::AvgPool:
            pool_forward(n.op, n.attrs, in[0], y);
            return;
        case Op::MixedPool:
            mixed_pool_forward(n.attrs, in[0], in[1][0], y);
            return;
        case Op::GlobalAvgPool:
            global_avg_pool_forward(in[0], y);
            return;
        case Op::Flatten:
            std::memcpy(y.data, in[0].data, sizeof(float) * y.numel());
            return;
        case Op::Gemm:
            gemm_forward(n.attrs, in[0], in[1], a.n_in > 2 ? &in[2] : nullptr, y);
            return;
        case Op::Softmax:
            softmax_forward(n.attrs.axis, in[0], y);
            return;
        case Op::Dropout:
            dropout_forward(n.attrs.ratio, node_seed(n, a.step_seed), in[0], y, a.training);
            return;
        default:
            fail("ref backend: node '" + n.name + "' (" + op_name(n.op) + ") cannot be executed");
    }
}

void RefBackend::backward(const GradArgs& g) {
    const OpArgs& a = g.fwd;
    const Node& n = a.node;
    check_no_training_fusion(n);
    const TensorView* in = a.in;
    TensorView* gin = g.grad_in;
    TensorView gy = g.grad_out;
    switch (n.op) {
        case Op::Conv:
            if (n.attrs.fused_residual || n.attrs.fused_relu)
                fail("ref backend: node '" + n.name + "' is a fused inference convolution and has no gradient");
            conv_backward(n.attrs, in[0], in[1], gy, gin[0], gin[1], a.n_in > 2 ? gin[2].data : nullptr);
            return;
        case Op::BatchNorm:
            batchnorm_backward(n.attrs, in[0], in[1], in[3], in[4], gy, gin[0], gin[1], gin[2], a.training);
            return;
        case Op::Relu:
            if (gin[0].data)
                for (int64_t i = 0; i < gy.numel(); ++i) gin[0][i] += a.out[i] > 0 ? gy[i] : 0.0f;
            return;
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::Div:
            binary_backward(n.op, in[0], in[1], gy, gin[0], gin[1]);
            return;
        case Op::Pad:
            if (gin[0].data) pad_backward(n.attrs, gy, gin[0]);
            return;
        case Op::MaxPool:
        case Op::AvgPool:
            if (gin[0].data) pool_backward(n.op, n.attrs, in[0], a.out, gy, gin[0]);
            return;
        case Op::MixedPool:
            mixed_pool_backward(n.attrs, in[0], in[1][0], gy, gin[0], gin[1].data);
            return;
        case Op::GlobalAvgPool:
            if (gin[0].data) global_avg_pool_backward(gy, gin[0]);
            return;
        case Op::Flatten:
            if (gin[0].data)
                for (int64_t i = 0; i < gy.numel(); ++i) gin[0][i] += gy[i];
            return;
        case Op::Gemm:
            gemm_backward(n.attrs, in[0], in[1], a.n_in > 2 ? &in[2] : nullptr, gy, gin[0], gin[1],
                          a.n_in > 2 ? gin[2] : TensorView{});
            return;
        case Op::Softmax:
            if (gin[0].data) softmax_backward(n.attrs.axis, a.out, gy, gin[0]);
            return;
        case Op::Dropout:
            if (gin[0].data) dropout_backward(n.attrs.ratio, node_seed(n, a.step_seed), gy, gin[0], a.training);
            return;
        default:
            fail("ref backend: node '" + n.name + "' (" + op_name(n.op) + ") has no gradient");
    }
}

}  // namespace engine::ref
