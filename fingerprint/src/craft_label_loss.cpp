// The losses of the label fingerprints (craft_label.h), hinges in the style of craft_loss.cpp: each
// adds dL/dlogits into grads and returns 0 once the sample is where it should be.
#include <algorithm>
#include <cmath>

#include "craft_parts.h"
#include "engine/exit_policy.h"

namespace fp {

namespace {

// Keep exit k's top class, if it is not `keep`, below q - margin: that exit must not answer.
double stay_below(const float* z, int classes, int keep, float threshold, double* p, float* g) {
    engine::softmax_row(z, classes, p);
    const int top = int(std::max_element(p, p + classes) - p);
    if (top == keep) return 0;
    const double excess = std::log(p[top]) - std::log(std::max(threshold, 1e-3f));
    if (excess <= 0) return 0;
    for (int c = 0; c < classes; ++c) g[c] += float((c == top) - p[c]);
    return excess;
}

}  // namespace

double ipguard_loss(const std::vector<const float*>& logits, int row, int classes, int i, int j, float gap,
                    const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads) {
    const int K = int(logits.size());
    std::vector<double> p(classes);
    double loss = 0;
    for (int k = 0; k + 1 < K; ++k)
        loss += stay_below(logits[k] + row * classes, classes, -1, q[k] - margin, p.data(),
                           grads[k].data() + row * classes);
    const float* z = logits[K - 1] + row * classes;
    float* g = grads[K - 1].data() + row * classes;
    const double lead = z[j] - z[i];
    if (lead < gap / 2) loss += gap / 2 - lead, g[i] += 1, g[j] -= 1;  // j must lead i ...
    if (lead > gap) loss += lead - gap, g[j] += 1, g[i] -= 1;          // ... by no more than gap
    int other = -1;                                                    // and i must be the runner-up
    for (int c = 0; c < classes; ++c)
        if (c != i && c != j && (other < 0 || z[c] > z[other])) other = c;
    if (other >= 0 && z[other] > z[i]) loss += z[other] - z[i], g[other] += 1, g[i] -= 1;
    return loss;
}

double cae_member_loss(const std::vector<const float*>& logits, int row, int classes, int target, float confidence,
                       const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads) {
    const int K = int(logits.size());
    std::vector<double> p(classes);
    double loss = 0;
    for (int k = 0; k + 1 < K; ++k)  // an earlier exit may answer, but only with the target
        loss += stay_below(logits[k] + row * classes, classes, target, q[k] - margin, p.data(),
                           grads[k].data() + row * classes);
    engine::softmax_row(logits[K - 1] + row * classes, classes, p.data());
    const double shortfall = std::log(confidence) - std::log(std::max(p[target], 1e-30));
    if (shortfall > 0) {
        float* g = grads[K - 1].data() + row * classes;
        for (int c = 0; c < classes; ++c) g[c] += float(p[c] - (c == target));
        loss += shortfall;
    }
    return loss;
}

double cae_reference_loss(const std::vector<const float*>& logits, int row, int classes, int target, float cap,
                          std::vector<std::vector<float>>& grads) {
    std::vector<double> p(classes);
    double loss = 0;
    for (size_t k = 0; k < logits.size(); ++k) {  // whichever exit answers, not with the target
        engine::softmax_row(logits[k] + row * classes, classes, p.data());
        const double excess = std::log(std::max(p[target], 1e-30)) - std::log(cap);
        if (excess <= 0) continue;
        float* g = grads[k].data() + row * classes;
        for (int c = 0; c < classes; ++c) g[c] += float((c == target) - p[c]);
        loss += excess;
    }
    return loss;
}

}  // namespace fp
