#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/train/adversarial.h"
#include "engine/train/augment.h"
#include "engine/train/loss.h"

namespace engine::train {

namespace {

// Clears every trainable flag while alive: Plan::backward then skips all parameter gradients.
class NoParamGrads {
public:
    explicit NoParamGrads(Graph& g) : g_(g) {
        for (size_t i = 0; i < g.nodes.size(); ++i)
            if (g.nodes[i].trainable) cleared_.push_back(int(i)), g.nodes[i].trainable = false;
    }
    ~NoParamGrads() {
        for (int i : cleared_) g_.nodes[i].trainable = true;
    }

private:
    Graph& g_;
    std::vector<int> cleared_;
};

}  // namespace

void pgd_attack(Plan& plan, Model& model, float* x, const int* labels, int n, const std::vector<float>& exit_weights,
                const PgdConfig& c, std::mt19937_64& rng) {
    check(c.eps >= 0 && c.step >= 0 && c.steps >= 0, "adversarial training: eps, step and steps must not be negative");
    check(&plan.model() == &model, "adversarial training: the plan does not run this model");
    check(int(exit_weights.size()) == model.num_exits(), "adversarial training: one exit weight per exit needed");
    if (c.steps == 0 || c.eps == 0) return;
    check(model.graph.inputs.size() == 1, "adversarial training: the model must have one input");
    int64_t per_sample = 1;
    for (int64_t d : model.graph.nodes[model.graph.inputs[0]].input_dims) per_sample *= d < 0 ? 1 : d;
    const int64_t count = per_sample * n;
    std::vector<float> x0(x, x + count);
    auto project = [&](int64_t i, float v) {
        return std::clamp(std::clamp(v, x0[i] - c.eps, x0[i] + c.eps), 0.0f, 1.0f);
    };
    if (c.random_start)
        for (int64_t i = 0; i < count; ++i) x[i] = project(i, x0[i] + c.eps * (2 * uniform01(rng) - 1));

    NoParamGrads frozen(model.graph);
    std::vector<std::vector<float>> grads(exit_weights.size());
    std::vector<const float*> seeds(exit_weights.size(), nullptr);
    for (int s = 0; s < c.steps; ++s) {
        plan.run_all(x, n, /*training=*/false);
        for (size_t k = 0; k < exit_weights.size(); ++k) {
            if (exit_weights[k] == 0) continue;
            TensorView z = plan.exit_logits(int(k));
            const int classes = int(z.numel() / n);
            grads[k].resize(z.numel());
            softmax_cross_entropy(z.data, labels, n, classes, grads[k].data(), exit_weights[k]);
            seeds[k] = grads[k].data();
        }
        plan.backward(seeds.data(), /*need_input_grad=*/true, /*training=*/false);
        const float* g = plan.input_grad().data;
        for (int64_t i = 0; i < count; ++i) {
            const float dir = g[i] > 0 ? 1.0f : (g[i] < 0 ? -1.0f : 0.0f);
            x[i] = project(i, x[i] + c.step * dir);
        }
    }
}

}  // namespace engine::train
