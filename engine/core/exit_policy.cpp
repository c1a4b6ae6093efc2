#include "engine/exit_policy.h"

#include <algorithm>
#include <cmath>

namespace engine {

double softmax_row(const float* z, int64_t classes, double* p, double inv_t) {
    double top = z[0] * inv_t;
    for (int64_t c = 1; c < classes; ++c) top = std::max(top, z[c] * inv_t);
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += (p[c] = std::exp(z[c] * inv_t - top));
    for (int64_t c = 0; c < classes; ++c) p[c] /= sum;
    return top + std::log(sum);
}

TopClass top_class(const float* z, int64_t classes) {
    int best = 0;
    for (int c = 1; c < classes; ++c)
        if (z[c] > z[best]) best = c;
    double sum = 0;  // no buffer: this runs on the inference path, which allocates nothing
    for (int c = 0; c < classes; ++c) sum += std::exp(double(z[c]) - z[best]);
    return {best, float(1.0 / sum)};
}

std::vector<int> exits_under_policy(const std::vector<const float*>& logits, int n, int64_t classes,
                                    const std::vector<float>& thresholds) {
    const int exits = int(logits.size());
    std::vector<int> taken(n, exits - 1);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < exits; ++k)
            if (exit_fires(k, exits, top_class(logits[k] + i * classes, classes).prob, thresholds.data())) {
                taken[i] = k;
                break;
            }
    return taken;
}

}  // namespace engine
