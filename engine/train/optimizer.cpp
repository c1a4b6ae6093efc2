#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/train/optimizer.h"

namespace engine::train {

namespace {

// Per-parameter state tensors, one set of `slots` per parameter, named for checkpoints.
class StatefulOptimizer : public Optimizer {
public:
    StatefulOptimizer(const std::vector<ParamRef>& params, std::vector<std::string> slots) : slots_(std::move(slots)) {
        for (const auto& p : params)
            for (size_t s = 0; s < slots_.size(); ++s) {
                names_.push_back(p.name + "/" + slots_[s]);
                state_.emplace_back(Shape{p.size}, 0.0f);
            }
    }
    std::vector<std::pair<std::string, Tensor*>> state() override {
        std::vector<std::pair<std::string, Tensor*>> out;
        for (size_t i = 0; i < state_.size(); ++i) out.emplace_back(names_[i], &state_[i]);
        return out;
    }

protected:
    float* slot(size_t param, size_t s) { return state_[param * slots_.size() + s].data(); }
    void check_sizes(const std::vector<ParamRef>& params, const std::vector<const float*>& grads) {
        check(params.size() * slots_.size() == state_.size() && grads.size() == params.size(),
              "optimizer: called with " + std::to_string(params.size()) + " parameters, built for " +
                  std::to_string(state_.size() / std::max<size_t>(slots_.size(), 1)));
    }

private:
    std::vector<std::string> slots_, names_;
    std::vector<Tensor> state_;
};

class Sgd : public StatefulOptimizer {
public:
    Sgd(const OptimizerConfig& c, const std::vector<ParamRef>& params)
        : StatefulOptimizer(params,
                            c.momentum != 0 ? std::vector<std::string>{"momentum"} : std::vector<std::string>{}),
          c_(c) {}

    void step(const std::vector<ParamRef>& params, const std::vector<const float*>& grads, float lr) override {
        if (c_.momentum != 0) check_sizes(params, grads);
        const bool first = steps_ == 0;
        for (size_t i = 0; i < params.size(); ++i) {
            float* p = params[i].value;
            const float* g = grads[i];
            float* buf = c_.momentum != 0 ? slot(i, 0) : nullptr;
            for (int64_t k = 0; k < params[i].size; ++k) {
                float d = g[k] + c_.weight_decay * p[k];
                if (buf) {
                    buf[k] = first ? d : c_.momentum * buf[k] + (1 - c_.dampening) * d;
                    d = c_.nesterov ? d + c_.momentum * buf[k] : buf[k];
                }
                p[k] -= lr * d;
            }
        }
        ++steps_;
    }

private:
    OptimizerConfig c_;
};

class Adam : public StatefulOptimizer {
public:
    Adam(const OptimizerConfig& c, const std::vector<ParamRef>& params)
        : StatefulOptimizer(params, {"exp_avg", "exp_avg_sq"}), c_(c) {}

    void step(const std::vector<ParamRef>& params, const std::vector<const float*>& grads, float lr) override {
        check_sizes(params, grads);
        const int64_t t = steps_ + 1;
        const double bc1 = 1 - std::pow(double(c_.beta1), double(t));
        const double bc2 = 1 - std::pow(double(c_.beta2), double(t));
        const float step_size = float(lr / bc1);
        const float bc2_sqrt = float(std::sqrt(bc2));
        for (size_t i = 0; i < params.size(); ++i) {
            float* p = params[i].value;
            const float* g = grads[i];
            float* m = slot(i, 0);
            float* v = slot(i, 1);
            for (int64_t k = 0; k < params[i].size; ++k) {
                const float d = g[k] + c_.weight_decay * p[k];
                m[k] = c_.beta1 * m[k] + (1 - c_.beta1) * d;
                v[k] = c_.beta2 * v[k] + (1 - c_.beta2) * d * d;
                p[k] -= step_size * m[k] / (std::sqrt(v[k]) / bc2_sqrt + c_.eps);
            }
        }
        ++steps_;
    }

private:
    OptimizerConfig c_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, const std::vector<ParamRef>& params) {
    check(c.weight_decay >= 0, "optimizer: weight decay must not be negative");
    if (c.kind == "sgd") {
        check(c.momentum >= 0 && c.momentum < 1, "optimizer: SGD momentum must lie in [0, 1)");
        check(!c.nesterov || (c.momentum > 0 && c.dampening == 0),
              "optimizer: Nesterov momentum needs a momentum and zero dampening");
        return std::make_unique<Sgd>(c, params);
    }
    if (c.kind == "adam") {
        check(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 && c.eps > 0,
              "optimizer: Adam needs betas in [0, 1) and a positive eps");
        return std::make_unique<Adam>(c, params);
    }
    fail("optimizer '" + c.kind + "': unknown (known: sgd, adam)");
}

}  // namespace engine::train
