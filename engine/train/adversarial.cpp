#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/train/adversarial.h"
#include "engine/exit_policy.h"
#include "engine/train/augment.h"
#include "engine/train/exit_mimicry.h"
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

// Signed-gradient ascent of a loss of the exit logits, projected to the eps-ball around x and [0, 1].
// seed_loss(k, z, n, grad) writes d(loss)/dz of exit k into grad.
template <class SeedLoss>
void projected_ascent(Plan& plan, Model& model, float* x, int n, const std::vector<float>& exit_weights,
                      const PgdConfig& c, std::mt19937_64& rng, float start, SeedLoss seed_loss) {
    int64_t per_sample = 1;
    for (int64_t d : model.graph.nodes[model.graph.inputs[0]].input_dims) per_sample *= d < 0 ? 1 : d;
    const int64_t count = per_sample * n;
    std::vector<float> x0(x, x + count);
    auto project = [&](int64_t i, float v) {
        return std::clamp(std::clamp(v, x0[i] - c.eps, x0[i] + c.eps), 0.0f, 1.0f);
    };
    if (start > 0)
        for (int64_t i = 0; i < count; ++i) x[i] = project(i, x0[i] + start * (2 * uniform01(rng) - 1));

    NoParamGrads frozen(model.graph);
    std::vector<std::vector<float>> grads(exit_weights.size());
    std::vector<const float*> seeds(exit_weights.size(), nullptr);
    for (int s = 0; s < c.steps; ++s) {
        plan.run_all(x, n, /*training=*/false);
        for (size_t k = 0; k < exit_weights.size(); ++k) {
            if (exit_weights[k] == 0) continue;
            TensorView z = plan.exit_logits(int(k));
            grads[k].resize(z.numel());
            seed_loss(int(k), z.data, int(z.numel() / n), grads[k].data());
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

void check_attack(const Plan& plan, const Model& model, const std::vector<float>& exit_weights, const PgdConfig& c) {
    check(c.eps >= 0 && c.step >= 0 && c.steps >= 0, "adversarial training: eps, step and steps must not be negative");
    check(&plan.model() == &model, "adversarial training: the plan does not run this model");
    check(int(exit_weights.size()) == model.num_exits(), "adversarial training: one exit weight per exit needed");
    check(model.graph.inputs.size() == 1, "adversarial training: the model must have one input");
}

}  // namespace

void pgd_attack(Plan& plan, Model& model, float* x, const int* labels, int n, const std::vector<float>& exit_weights,
                const PgdConfig& c, std::mt19937_64& rng) {
    check_attack(plan, model, exit_weights, c);
    if (c.steps == 0 || c.eps == 0) return;
    projected_ascent(plan, model, x, n, exit_weights, c, rng, c.random_start ? c.eps : 0.0f,
                     [&](int k, const float* z, int classes, float* grad) {
                         softmax_cross_entropy(z, labels, n, classes, grad, exit_weights[k]);
                     });
}

void trades_attack(Plan& plan, Model& model, float* x, int n, const std::vector<float>& exit_weights,
                   const PgdConfig& c, std::mt19937_64& rng) {
    check_attack(plan, model, exit_weights, c);
    if (c.steps == 0 || c.eps == 0) return;
    // The clean answer distributions, per exit, that the attack moves away from.
    std::vector<std::vector<float>> clean(exit_weights.size());
    plan.run_all(x, n, /*training=*/false);
    for (size_t k = 0; k < exit_weights.size(); ++k) {
        if (exit_weights[k] == 0) continue;
        TensorView z = plan.exit_logits(int(k));
        const int classes = int(z.numel() / n);
        clean[k].resize(z.numel());
        std::vector<double> p(classes);
        for (int r = 0; r < n; ++r) {
            softmax_row(z.data + int64_t(r) * classes, classes, p.data());
            for (int j = 0; j < classes; ++j) clean[k][int64_t(r) * classes + j] = float(p[j]);
        }
    }
    // TRADES starts at 0.001 * N(0, 1); a uniform start of the same scale serves.
    projected_ascent(plan, model, x, n, exit_weights, c, rng, 0.001f,
                     [&](int k, const float* z, int classes, float* grad) {
                         // d KL(clean || softmax(z)) / dz = softmax(z) - clean
                         soft_cross_entropy(z, clean[k].data(), n, classes, grad, exit_weights[k]);
                     });
}

}  // namespace engine::train
