// The multi-exit model-stealing attack (after Pan et al., arXiv 2305.13584): the attacker queries the
// victim, reads its answer and, from the response time, the exit that answered, and trains a copy of
// the same number of exits to reproduce both. Here the attacker is given the exact exit (the
// strongest form of the attack: inferring it from latency can only be worse) and the answering
// exit's softmax, never the true labels or the victim's unanswered exits.
//
// Targets of the copy's exit k for a sample the victim answered at exit e with distribution a:
//   k >= e: a itself, so the copy answers alike and is confident where the victim was;
//   k <  e: a flattened towards uniform until its top probability is thresholds[k] - margin, so
//           the copy's earlier exits learn the answer but stay below their exit threshold.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <vector>

namespace engine::train {

struct ENGINE_API MimicTargets {
    std::vector<int> victim_exit;               // per sample: the exit the victim answered at
    std::vector<std::vector<float>> per_exit;   // per exit: n x classes target probabilities
};

// victim_logits[k]: n rows of `classes` logits of the victim's exit k (all exits run, as the
// attacker's timing reveals only the one taken). thresholds: the victim's exit policy, which the
// copy adopts (the attacker infers it from the exits it saw).
ENGINE_API MimicTargets exit_mimicry_targets(const std::vector<const float*>& victim_logits, int n, int classes,
                                             const std::vector<float>& thresholds, float margin = 0.1f);

// Mean over n rows of -sum_c targets_c log softmax(logits)_c. grad (n x classes, may be null)
// receives weight * (softmax - targets) / n. agree, when given, receives the number of rows whose
// arg-max is the target's.
ENGINE_API double soft_cross_entropy(const float* logits, const float* targets, int n, int classes, float* grad,
                                     float weight = 1.0f, int* agree = nullptr);

}  // namespace engine::train
