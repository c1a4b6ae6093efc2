// Graph pass (internal to libengine) for training plans on backends that fuse element-wise passes
// into BatchNorm and residual Add (Backend::fuses_training_elementwise). In training these passes are
// bound by memory traffic; fused, the value in between is neither written nor read back, forward or
// backward. Two folds, where the value in between has no other consumer and is not an exit:
//   Add(BatchNorm(x), r), r of the Add's shape -> BatchNorm with r as a sixth input, Attrs::fused_residual;
//   Relu(BatchNorm(x)) (with a residual or not), Relu(Add(a, b)) with a, b of one shape -> that node
//     with Attrs::fused_relu.
// As in fuse_conv.h, nodes[i] is pointed at a replacement kept in `owned`, the fused node takes the
// index of the node it replaces, and the absorbed node is left with no consumer (a plan never runs it).
// Returns the number of nodes absorbed.
#pragma once
#include <deque>
#include <vector>

#include "engine/graph.h"

namespace engine {

int fuse_training_elementwise(const Graph& g, const std::vector<Shape>& shapes, std::vector<const Node*>& nodes,
                              std::deque<Node>& owned);

}  // namespace engine
