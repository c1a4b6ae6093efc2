// Graph pass (internal to libengine) for inference plans: folds what follows a convolution into it.
#pragma once
#include <deque>
#include <vector>

#include "engine/graph.h"

namespace engine {

// Rewrites, where the value in between has a single consumer and is not an exit:
//   BatchNorm(Conv(x)) (inference statistics)  -> Conv with folded weights and bias
//   Add(Conv(x), r) or Add(r, Conv(x)), no broadcast -> Conv with Attrs::fused_residual, r its last input
//   Relu(Conv(x))                               -> Conv with Attrs::fused_relu
// The graph itself is not touched: nodes[i] (initially &g.nodes[i]) is pointed at a replacement
// kept in `owned`. A fused node takes the index of the last node it absorbs, so consumers and exits
// keep their indices and the absorbed nodes are left with no consumer (a plan never runs them).
// Folded BatchNorm weights are a copy: later changes to the model's weights do not reach them.
// Returns the number of nodes absorbed.
int fuse_conv_epilogues(const Graph& g, const std::vector<Shape>& shapes, std::vector<const Node*>& nodes,
                        std::deque<Node>& owned);

}  // namespace engine
