// Graph pass (internal to libengine) for training plans on backends that take a fused ReLU after
// BatchNorm and residual Add (Backend::fuses_training_relu): Relu(BatchNorm(x)) and Relu(Add(a, b))
// with a, b of one shape become that node with Attrs::fused_relu, where the value in between has no
// other consumer and is not an exit. In training these element-wise passes are bound by memory
// traffic: fused, the pre-ReLU value is neither written nor read back, forward or backward. As in
// fuse_conv.h, nodes[i] is pointed at a replacement kept in `owned`, the fused node takes the ReLU's
// index, and the absorbed node is left with no consumer (a plan never runs it).
// Returns the number of ReLUs absorbed.
#pragma once
#include <deque>
#include <vector>

#include "engine/graph.h"

namespace engine {

int fuse_training_relu(const Graph& g, const std::vector<Shape>& shapes, std::vector<const Node*>& nodes,
                       std::deque<Node>& owned);

}  // namespace engine
