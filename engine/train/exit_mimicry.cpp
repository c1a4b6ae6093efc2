#include "engine/train/exit_mimicry.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/exit_policy.h"

namespace engine::train {

MimicTargets exit_mimicry_targets(const std::vector<const float*>& victim_logits, int n, int classes,
                                  const std::vector<float>& thresholds, float margin) {
    const int exits = int(victim_logits.size());
    check(exits >= 1 && n >= 1 && classes >= 2, "exit mimicry: empty batch or exits");
    check(int(thresholds.size()) == exits, "exit mimicry: " + std::to_string(thresholds.size()) +
                                               " thresholds for " + std::to_string(exits) + " exits");
    MimicTargets t;
    t.victim_exit = exits_under_policy(victim_logits, n, classes, thresholds);
    t.per_exit.assign(exits, std::vector<float>(size_t(n) * classes));
    std::vector<double> answer(classes);
    const double uniform = 1.0 / classes;
    for (int i = 0; i < n; ++i) {
        const int e = t.victim_exit[i];
        softmax_row(victim_logits[e] + int64_t(i) * classes, classes, answer.data());
        const double top = *std::max_element(answer.begin(), answer.end());
        for (int k = 0; k < exits; ++k) {
            // Mix the answer with uniform so that the top probability is `cap` (never sharpen it).
            double mix = 1.0;
            if (k < e) {
                const double cap = std::max(uniform, double(thresholds[k]) - margin);
                if (top > cap) mix = (cap - uniform) / (top - uniform);
            }
            float* row = t.per_exit[k].data() + int64_t(i) * classes;
            for (int c = 0; c < classes; ++c) row[c] = float(mix * answer[c] + (1 - mix) * uniform);
        }
    }
    return t;
}

double soft_cross_entropy(const float* logits, const float* targets, int n, int classes, float* grad, float weight,
                          int* agree) {
    check(n >= 1 && classes >= 1, "soft cross-entropy: empty batch");
    std::vector<double> p(classes);
    double total = 0;
    int same = 0;
    for (int r = 0; r < n; ++r) {
        const float* z = logits + int64_t(r) * classes;
        const float* t = targets + int64_t(r) * classes;
        const double lse = softmax_row(z, classes, p.data());
        for (int c = 0; c < classes; ++c) total += t[c] * (lse - z[c]);
        same += top_class(z, classes).cls == top_class(t, classes).cls;
        if (!grad) continue;
        float* g = grad + int64_t(r) * classes;
        const double scale = double(weight) / n;
        for (int c = 0; c < classes; ++c) g[c] = float(scale * (p[c] - t[c]));
    }
    if (agree) *agree = same;
    return total / n;
}

}  // namespace engine::train
