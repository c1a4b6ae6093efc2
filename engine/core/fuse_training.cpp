#include "fuse_training.h"

#include <algorithm>

namespace engine {

int fuse_training_elementwise(const Graph& g, const std::vector<Shape>& shapes, std::vector<const Node*>& nodes,
                              std::deque<Node>& owned) {
    std::vector<int> consumers = g.consumer_counts();
    auto absorbable = [&](int p) {
        return consumers[p] == 1 && std::find(g.outputs.begin(), g.outputs.end(), p) == g.outputs.end();
    };
    // Node j becomes a copy of node p (with `change` applied); p is left with no consumer.
    auto replace = [&](int j, int p, auto change) {
        Node fused = *nodes[p];
        change(fused);
        owned.push_back(std::move(fused));
        nodes[j] = &owned.back();
        consumers[p] = 0;
    };
    auto same_shape_add = [&](const Node& n) {
        return n.op == Op::Add && n.inputs.size() == 2 && shapes[n.inputs[0]] == shapes[n.inputs[1]];
    };
    int fused = 0;
    // One pass in graph order: an Add becomes BatchNorm-with-residual before the ReLU after it is met.
    for (size_t j = 0; j < nodes.size(); ++j) {
        const Node& n = *nodes[j];
        if (same_shape_add(n)) {  // as in the graph: nothing replaces node j before j is reached
            for (int k = 0; k < 2; ++k) {
                const int p = n.inputs[k], r = n.inputs[1 - k];
                const Node& bn = *nodes[p];
                if (bn.op != Op::BatchNorm || bn.attrs.fused_relu || bn.attrs.fused_residual || !absorbable(p) ||
                    shapes[p] != shapes[j])
                    continue;
                replace(int(j), p, [r](Node& f) {
                    f.attrs.fused_residual = true;
                    f.inputs.push_back(r);
                });
                ++fused;
                break;
            }
        } else if (n.op == Op::Relu && n.inputs.size() == 1) {
            const int p = n.inputs[0];
            const Node& before = *nodes[p];
            if (before.attrs.fused_relu || !absorbable(p)) continue;
            if (before.op != Op::BatchNorm && !same_shape_add(before)) continue;
            replace(int(j), p, [](Node& f) { f.attrs.fused_relu = true; });
            ++fused;
        }
    }
    return fused;
}

}  // namespace engine
