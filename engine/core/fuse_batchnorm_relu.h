// Graph pass (internal to libengine) for training plans on backends that take BatchNorm with a
// fused ReLU (Backend::fuses_batchnorm_relu): Relu(BatchNorm(x)) -> BatchNorm with Attrs::fused_relu,
// where the BatchNorm's value has no other consumer and is not an exit. In training the pair is
// bound by memory traffic: fused, the pre-ReLU value is neither written nor read back, forward or
// backward. As in fuse_conv.h, nodes[i] is pointed at a replacement kept in `owned`, the fused node
// takes the ReLU's index, and the absorbed BatchNorm is left with no consumer (a plan never runs it).
// Returns the number of pairs fused.
#pragma once
#include <deque>
#include <vector>

#include "engine/graph.h"

namespace engine {

int fuse_batchnorm_relu(const Graph& g, std::vector<const Node*>& nodes, std::deque<Node>& owned);

}  // namespace engine
