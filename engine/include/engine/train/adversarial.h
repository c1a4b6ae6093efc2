// Projected gradient descent (Madry et al.) under an L-infinity bound, on the engine's own input
// gradients, for adversarial training. The attack runs the model in inference mode (BatchNorm
// uses its running statistics and is not updated) and maximises the weighted cross-entropy over
// the exits the training loss uses; trades_attack maximises the TRADES divergence instead.
#pragma once
#include "engine/api.h"
#include <random>
#include <vector>

#include "engine/model.h"
#include "engine/plan.h"

namespace engine::train {

struct ENGINE_API PgdConfig {
    float eps = 8.0f / 255.0f;   // L-inf radius in pixel units ([0, 1] images)
    float step = 2.0f / 255.0f;  // per-iteration step
    int steps = 7;
    bool random_start = true;  // uniform in [-eps, eps] first
};

// Overwrites x (n images, as the plan's input) with adversarial versions of itself: every pixel
// stays within eps of the original and in [0, 1]. `model` must be the model `plan` runs (a
// keep_all plan); its trainable flags are cleared for the duration so that the backward passes
// compute only the input gradient, and restored before returning (also on an exception).
// exit_weights: one per exit (0 = not attacked). Random starts draw from rng.
ENGINE_API void pgd_attack(Plan& plan, Model& model, float* x, const int* labels, int n,
                           const std::vector<float>& exit_weights, const PgdConfig& config, std::mt19937_64& rng);

// The inner maximisation of TRADES (Zhang et al., 2019): from x plus a small random start, signed
// steps that raise sum_k w_k KL(softmax(z_k(x)) || softmax(z_k(x'))), projected as pgd_attack does;
// no labels. Overwrites x with x' (the clean logits are computed first, in inference mode).
ENGINE_API void trades_attack(Plan& plan, Model& model, float* x, int n, const std::vector<float>& exit_weights,
                              const PgdConfig& config, std::mt19937_64& rng);

}  // namespace engine::train
