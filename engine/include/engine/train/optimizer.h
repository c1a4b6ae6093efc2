// Optimisers with PyTorch's update rules (torch.optim.SGD and torch.optim.Adam), state per
// parameter, and a fixed pruning mask that keeps pruned weights at zero.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace engine::train {

// One parameter as the optimiser sees it: its values (updated in place) and a name for checkpoints.
struct ENGINE_API ParamRef {
    std::string name;
    float* value = nullptr;
    int64_t size = 0;
};

struct ENGINE_API OptimizerConfig {
    std::string kind = "sgd";                         // "sgd" or "adam"
    float momentum = 0.9f;                            // SGD
    float dampening = 0.0f;                           // SGD
    bool nesterov = true;                             // SGD
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // Adam
    float weight_decay = 0.0f;                        // L2 added to the gradient (PyTorch's weight_decay, not AdamW)
};

class ENGINE_API Optimizer {
public:
    virtual ~Optimizer() = default;
    // One update of every parameter with its gradient (grads[i] has params[i].size floats).
    virtual void step(const std::vector<ParamRef>& params, const std::vector<const float*>& grads, float lr) = 0;
    // State tensors for checkpoints, "<param name>/<slot>", in a fixed order; restoring writes into them.
    virtual std::vector<std::pair<std::string, Tensor*>> state() = 0;
    int64_t steps() const { return steps_; }
    void set_steps(int64_t steps) { steps_ = steps; }

protected:
    int64_t steps_ = 0;
};

// SGD: g += wd * p; buf = g on the first step, else momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g.
// Adam: g += wd * p; m, v moving averages; p -= lr * m_hat / (sqrt(v_hat) + eps).
ENGINE_API std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config,
                                                     const std::vector<ParamRef>& params);

}  // namespace engine::train
