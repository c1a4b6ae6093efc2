// Training losses over a batch of logits: softmax cross-entropy, knowledge distillation and
// the SDN joint-loss weights. Each loss returns the batch-mean value and writes dLoss/dlogits,
// scaled by `weight`, so several exits' losses add up to one weighted objective.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <vector>

namespace engine::train {

// Mean over n rows of -log softmax(logits)[label]. grad (n x classes) receives
// weight * (softmax - onehot) / n; grad may be null. correct, when given, receives the
// number of rows whose arg-max equals the label.
ENGINE_API double softmax_cross_entropy(const float* logits, const int* labels, int n, int classes, float* grad,
                                        float weight = 1.0f, int* correct = nullptr);

// Distillation as in Hinton et al.: (1 - alpha) * CE(student, labels)
//   + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over the batch.
// grad receives weight * dLoss/dstudent (may be null).
ENGINE_API double distillation_loss(const float* student, const float* teacher, const int* labels, int n, int classes,
                                    float temperature, float alpha, float* grad, float weight = 1.0f,
                                    int* correct = nullptr);

// TRADES (Zhang et al., 2019): CE(clean, labels) + beta * KL(softmax(clean) || softmax(adv)), mean
// over n rows; clean and adv are the logits of the same n samples, without and with the attack.
// grad_clean and grad_adv (may be null together) receive weight * the loss's derivatives.
ENGINE_API double trades_loss(const float* clean, const float* adv, const int* labels, int n, int classes, float beta,
                              float* grad_clean, float* grad_adv, float weight = 1.0f, int* correct = nullptr);

// SDN joint training (Kaya et al., 2019): loss = sum_i tau_i * CE(IC_i) + CE(final). tau_i grows
// linearly from 0 to its cap over the run (progress in [0, 1]); the caps are
// [0.15, 0.3, 0.45, 0.6, 0.75, 0.9], the first k of them for k <= 6 internal classifiers (as the
// SDN code does), spread evenly from 0.15 to 0.9 for more. Returns one weight per exit; the last is 1.
ENGINE_API std::vector<float> sdn_exit_weights(int num_exits, double progress);

// Plain training: the final exit only.
ENGINE_API std::vector<float> final_exit_weights(int num_exits);

}  // namespace engine::train
