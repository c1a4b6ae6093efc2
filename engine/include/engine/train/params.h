// Which parameters a run trains, re-initialising some of them, and magnitude pruning.
// Parameters are the Graph's trainable Constant nodes; their Node::value is what the Plan reads.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"

namespace engine::train {

// Trainable Constant nodes, in graph order.
ENGINE_API std::vector<int> trainable_nodes(const Graph& graph);

// The subset of trainable_nodes to train: mode "ic-only" keeps names containing ".ic."; a
// non-empty `pattern` (ECMAScript regex, searched in the name) keeps only matching ones.
// Throws when nothing is left, naming the filter.
ENGINE_API std::vector<int> select_parameters(const Graph& graph, const std::string& mode, const std::string& pattern);

// Re-initialises every trainable parameter whose name matches `pattern` (regex search) as the
// model builders do, judged by how the graph uses it: Conv weights He-normal (fan_out), Conv
// biases and Gemm weights and biases uniform(+-1/sqrt(fan_in)), BatchNorm scale 1 and bias 0
// (with that layer's running mean 0 and variance 1), MixedPool alpha 0.5. Returns how many
// parameters it re-initialised; throws when none matches or one has a use it cannot initialise.
ENGINE_API int reinitialize(Graph& graph, const std::string& pattern, uint64_t seed);

// A fixed pruning mask over some parameters: 1 keeps a weight, 0 prunes it.
struct ENGINE_API PruneMask {
    std::vector<int> nodes;                  // masked parameters
    std::vector<std::vector<uint8_t>> keep;  // one entry per element of each
    int64_t pruned = 0, total = 0;
    bool empty() const { return nodes.empty(); }
    void apply_to_values(Graph& graph) const;  // zeroes pruned weights
    // Zeroes pruned entries of the gradient of nodes[i].
    void apply_to_grad(size_t i, float* grad) const;
    int index_of(int node) const;  // position in nodes, or -1
};

// Global magnitude pruning: among all trainable 4-D (Conv) and 2-D (Gemm) weights, the `fraction`
// of elements with the smallest |w| are pruned (ties broken by position, so exactly
// round(fraction * total) elements). fraction in [0, 1).
ENGINE_API PruneMask magnitude_prune(Graph& graph, double fraction);

// Weight quantisation as a pirate shipping an int8 model applies it: every trainable 4-D (Conv)
// weight rounded to `bits`-bit symmetric levels with one scale per output channel (max |w| over
// the channel maps to 2^(bits-1) - 1), every 2-D (Gemm) weight with one scale for the tensor.
// Biases, BatchNorm and activations stay float. Returns the number of weights quantised.
ENGINE_API int64_t quantize_weights(Graph& graph, int bits);

}  // namespace engine::train
