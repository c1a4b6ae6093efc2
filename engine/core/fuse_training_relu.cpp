#include "fuse_training_relu.h"

#include <algorithm>

namespace engine {

int fuse_training_relu(const Graph& g, const std::vector<Shape>& shapes, std::vector<const Node*>& nodes,
                       std::deque<Node>& owned) {
    std::vector<int> consumers(nodes.size(), 0);
    for (const Node* n : nodes)
        for (int j : n->inputs) ++consumers[j];
    auto takes_relu = [&](const Node& n) {
        if (n.attrs.fused_relu) return false;
        if (n.op == Op::BatchNorm) return true;
        return n.op == Op::Add && n.inputs.size() == 2 && shapes[n.inputs[0]] == shapes[n.inputs[1]];
    };
    int fused = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i]->op != Op::Relu || nodes[i]->inputs.size() != 1) continue;
        const int p = nodes[i]->inputs[0];
        const bool is_exit = std::find(g.outputs.begin(), g.outputs.end(), p) != g.outputs.end();
        if (!takes_relu(*nodes[p]) || consumers[p] != 1 || is_exit) continue;
        Node replacement = *nodes[p];
        replacement.attrs.fused_relu = true;
        owned.push_back(std::move(replacement));
        nodes[i] = &owned.back();
        consumers[p] = 0;
        ++fused;
    }
    return fused;
}

}  // namespace engine
