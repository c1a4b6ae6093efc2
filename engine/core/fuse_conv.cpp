#include "fuse_conv.h"

#include <algorithm>

#include "engine/batchnorm_fold.h"

namespace engine {
namespace {

struct Pass {
    const Graph& g;
    const std::vector<Shape>& shapes;
    std::vector<const Node*>& nodes;
    std::deque<Node>& owned;
    std::vector<int> consumers;  // reads of each value, one per input slot

    bool is_exit(int i) const { return std::find(g.outputs.begin(), g.outputs.end(), i) != g.outputs.end(); }
    bool is_constant(int i) const { return nodes[i]->op == Op::Constant; }

    // A convolution whose output may be absorbed by its only consumer.
    bool absorbable_conv(int p) const { return nodes[p]->op == Op::Conv && consumers[p] == 1 && !is_exit(p); }

    void replace(int i, Node n) {
        owned.push_back(std::move(n));
        nodes[i] = &owned.back();
    }

    // BatchNorm(Conv(x, w[, b])) -> Conv(x, w', b') (batchnorm_fold.h).
    // The folded weights and bias replace constants that only this convolution (or BatchNorm) reads.
    bool fold_batchnorm(int j) {
        const Node& bn = *nodes[j];
        const int p = bn.inputs[0];
        if (!absorbable_conv(p)) return false;
        const Node& conv = *nodes[p];
        if (conv.attrs.fused_residual || conv.attrs.fused_relu) return false;
        for (int k = 1; k < 5; ++k)
            if (!is_constant(bn.inputs[k])) return false;
        const int w = conv.inputs[1];
        const bool has_bias = conv.inputs.size() > 2;
        const int b = has_bias ? conv.inputs[2] : bn.inputs[2];  // no conv bias: BatchNorm's bias slot takes it
        if (!is_constant(w) || consumers[w] != 1 || !is_constant(b) || consumers[b] != 1) return false;
        const Tensor &gamma = nodes[bn.inputs[1]]->value, &beta = nodes[bn.inputs[2]]->value,
                     &mean = nodes[bn.inputs[3]]->value, &var = nodes[bn.inputs[4]]->value;
        Node wn = *nodes[w], bn_bias = *nodes[b];
        const int64_t K = wn.value.shape()[0];
        if (bn_bias.value.numel() != K) return false;
        if (!has_bias) bn_bias.value = Tensor(Shape{K});  // zeros: the convolution had no bias
        fold_batchnorm_into_conv(wn.value, bn_bias.value, gamma, beta, mean, var, bn.attrs.epsilon);
        Node fused = conv;
        fused.inputs = {conv.inputs[0], w, b};
        replace(w, std::move(wn));
        replace(b, std::move(bn_bias));
        replace(j, std::move(fused));
        return true;
    }

    bool fuse_residual(int j) {
        const Node& add = *nodes[j];
        if (add.inputs.size() != 2) return false;
        for (int k = 0; k < 2; ++k) {
            const int p = add.inputs[k], r = add.inputs[1 - k];
            if (!absorbable_conv(p) || is_constant(r) || shapes[p] != shapes[j] || shapes[r] != shapes[j]) continue;
            const Node& conv = *nodes[p];
            if (conv.attrs.fused_residual || conv.attrs.fused_relu) continue;
            Node fused = conv;
            fused.attrs.fused_residual = true;
            fused.inputs.push_back(r);
            replace(j, std::move(fused));
            return true;
        }
        return false;
    }

    bool fuse_relu(int j) {
        const int p = nodes[j]->inputs[0];
        if (!absorbable_conv(p) || nodes[p]->attrs.fused_relu) return false;
        Node fused = *nodes[p];
        fused.attrs.fused_relu = true;
        replace(j, std::move(fused));
        return true;
    }
};

}  // namespace

int fuse_conv_epilogues(const Graph& g, const std::vector<Shape>& shapes, std::vector<const Node*>& nodes,
                        std::deque<Node>& owned) {
    Pass pass{g, shapes, nodes, owned, g.consumer_counts()};
    int absorbed = 0;
    for (int j = 0; j < static_cast<int>(g.nodes.size()); ++j) {
        switch (nodes[j]->op) {
            case Op::BatchNorm:
                absorbed += pass.fold_batchnorm(j);
                break;
            case Op::Add:
                absorbed += pass.fuse_residual(j);
                break;
            case Op::Relu:
                absorbed += pass.fuse_relu(j);
                break;
            default:
                break;
        }
    }
    return absorbed;
}

}  // namespace engine
