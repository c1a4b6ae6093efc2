// The early-exit rule, written once: exit k fires when the top softmax probability of its logits
// reaches thresholds[k] (compared in float); the first exit that fires is taken; the last always fires.
// The plan, evaluation and fingerprint crafting all decide exits here.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/api.h"

namespace engine {

// softmax(z * inv_t) of one row of logits into p (double, for a stable sum); returns the
// log-sum-exp of z * inv_t.
ENGINE_API double softmax_row(const float* z, int64_t classes, double* p, double inv_t = 1.0);

// The exit decision's statistic for one row of logits: the top class and its softmax probability.
struct ENGINE_API TopClass {
    int cls;
    float prob;
};
ENGINE_API TopClass top_class(const float* logits, int64_t classes);

// Whether exit `exit` of `num_exits` fires for a row whose top probability is `prob`.
inline bool exit_fires(int exit, int num_exits, float prob, const float* thresholds) {
    return exit == num_exits - 1 || prob >= thresholds[exit];
}

// The exit each of n samples takes, from every exit's logits (logits[k]: n rows of `classes`).
ENGINE_API std::vector<int> exits_under_policy(const std::vector<const float*>& logits, int n, int64_t classes,
                                               const std::vector<float>& thresholds);

}  // namespace engine
