// Graph pass (internal to libengine): SDN mixed-pooling heads as exporters write them, unfused.
#pragma once
#include "engine/graph.h"

namespace engine {

// Rewrites every Add(Mul(alpha, MaxPool(x)), Mul(c, AvgPool(x))) with scalar Constants alpha and
// c = 1 - alpha (within 1e-6), identical pooling windows, no ceil_mode and intermediates read by
// nothing else, into one MixedPool(x, alpha). The 1 - alpha Constant goes, so training updates
// a single weight per head and the two stay tied. Anything else is left as it is.
// Returns the number of heads fused; indices of the remaining nodes shift down.
int fuse_mixed_pool(Graph& g);

}  // namespace engine
