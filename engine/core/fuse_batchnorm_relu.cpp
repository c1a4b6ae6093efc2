#include "fuse_batchnorm_relu.h"

#include <algorithm>

namespace engine {

int fuse_batchnorm_relu(const Graph& g, std::vector<const Node*>& nodes, std::deque<Node>& owned) {
    std::vector<int> consumers(nodes.size(), 0);
    for (const Node* n : nodes)
        for (int j : n->inputs) ++consumers[j];
    int fused = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i]->op != Op::Relu || nodes[i]->inputs.size() != 1) continue;
        const int b = nodes[i]->inputs[0];
        const Node& bn = *nodes[b];
        const bool is_exit = std::find(g.outputs.begin(), g.outputs.end(), b) != g.outputs.end();
        if (bn.op != Op::BatchNorm || bn.attrs.fused_relu || consumers[b] != 1 || is_exit) continue;
        Node replacement = bn;
        replacement.attrs.fused_relu = true;
        owned.push_back(std::move(replacement));
        nodes[i] = &owned.back();
        consumers[b] = 0;
        ++fused;
    }
    return fused;
}

}  // namespace engine
