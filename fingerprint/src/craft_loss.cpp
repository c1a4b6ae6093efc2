#include <algorithm>
#include <cmath>

#include "craft_parts.h"
#include "engine/exit_policy.h"

namespace fp {

double exit_loss(const std::vector<const float*>& logits, int row, int classes, int target, int target_class,
                 const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads) {
    std::vector<double> p(classes);
    double loss = 0;
    for (int k = 0; k <= target; ++k) {
        engine::softmax_row(logits[k] + row * classes, classes, p.data());
        float* g = grads[k].data() + row * classes;
        if (k < target) {  // stay below q_k - margin: push the top class down
            int top = int(std::max_element(p.begin(), p.end()) - p.begin());
            double excess = std::log(p[top]) - std::log(std::max(q[k] - margin, 1e-3f));
            if (excess > 0) {
                loss += excess;
                for (int c = 0; c < classes; ++c) g[c] += float((c == top) - p[c]);
            }
        } else if (k < int(logits.size()) - 1) {  // clear q_t + margin on the target class
            double shortfall = std::log(std::min(q[k] + margin, 0.999f)) - std::log(std::max(p[target_class], 1e-30));
            if (shortfall > 0) {
                loss += shortfall;
                for (int c = 0; c < classes; ++c) g[c] += float(p[c] - (c == target_class));
            }
        }
    }
    return loss;
}

// Probability margin of a sample for its target: how far inside the thresholds it sits.
float achieved_margin(const std::vector<const float*>& logits, int row, int classes, int target,
                      const std::vector<float>& q) {
    std::vector<double> p(classes);
    double m = 1.0;
    for (int k = 0; k <= target && k < int(logits.size()) - 1; ++k) {
        engine::softmax_row(logits[k] + row * classes, classes, p.data());
        double top = *std::max_element(p.begin(), p.end());
        m = std::min(m, k < target ? q[k] - top : top - q[k]);
    }
    return float(m);
}

}  // namespace fp
