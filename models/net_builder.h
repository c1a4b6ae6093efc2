// Internal to models/: a thin layer over Graph::add_constant/add_op that creates a layer's
// parameters with their initialisation and tracks the feature-map shape, so that each
// architecture file reads like its PyTorch definition.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/model.h"

namespace engine::zoo {

// A value in the graph with its per-sample shape (c, h, w); after flatten, h = w = 1.
struct Feat {
    int node = -1;
    int64_t c = 0, h = 0, w = 0;
};

class NetBuilder {
public:
    explicit NetBuilder(uint64_t seed) : rng_(seed) {}

    Graph& graph() { return graph_; }

    Feat input(int64_t channels, int64_t size);  // the graph input "image"
    // Sub(mean) then Div(std), constants "<name>.mean" and "<name>.std" of shape [1, C, 1, 1].
    Feat normalize(const std::string& name, Feat x, const std::vector<float>& mean, const std::vector<float>& std);
    // Conv without bias, weight "<name>.weight" [out, in/groups, k, k], He-normal (fan_out).
    Feat conv(const std::string& name, Feat x, int64_t out, int k, int stride, int pad, int groups = 1);
    // BatchNorm with "<name>.weight/.bias" (trainable) and "<name>.running_mean/.running_var".
    Feat batch_norm(const std::string& name, Feat x);
    Feat relu(const std::string& name, Feat x);
    Feat add(const std::string& name, Feat a, Feat b);
    Feat max_pool(const std::string& name, Feat x, int k);
    Feat avg_pool(const std::string& name, Feat x, int k);
    Feat global_avg_pool(const std::string& name, Feat x);
    Feat flatten(const std::string& name, Feat x);
    Feat dropout(const std::string& name, Feat x, float ratio);
    // Gemm with trans_b: "<name>.weight" [out, in] and "<name>.bias" [out], uniform(+-1/sqrt(in)).
    Feat linear(const std::string& name, Feat x, int64_t out);
    // conv -> BatchNorm -> ReLU named "<name>.0", ".1", ".2" (a PyTorch Sequential).
    Feat conv_bn_relu(const std::string& name, Feat x, int64_t out, int k, int stride, int pad, int groups = 1);
    // ResNet basic block "<name>": c1,b1,relu,c2,b2 (+ sc.0 1x1 conv, sc.1 BN when the shape
    // changes), then the residual Add. The ReLU after the Add is the caller's (a module of its own).
    Feat basic_block(const std::string& name, Feat x, int64_t out, int stride);
    // The SDN internal classifier "<prefix>": mixed pooling to about 4x4 when the side is >= 4,
    // then flatten and a linear layer (sdn_head.cpp). Returns the logits node.
    int ic_head(const std::string& prefix, Feat x, int num_classes);

    void add_exit(int node);
    // Packs the graph into a Model with thresholds 0.9 and the given metadata; validates it.
    Model finish(std::map<std::string, std::string> metadata);

private:
    float normal();  // standard normal from rng_ (Box-Muller; same on every platform)
    float uniform(float lo, float hi);
    int parameter(const std::string& name, Shape shape, bool trainable, float fill);

    Graph graph_;
    std::mt19937_64 rng_;
};

}  // namespace engine::zoo
