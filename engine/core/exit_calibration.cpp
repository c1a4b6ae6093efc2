#include "engine/exit_calibration.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/exit_policy.h"
#include "engine/plan.h"

namespace engine {

std::vector<float> thresholds_for_exit_shares(const Model& model, Backend& backend, const Dataset& data,
                                              const std::vector<double>& shares, int batch) {
    const int exits = model.num_exits();
    check(int(shares.size()) == exits, "exit shares: " + std::to_string(shares.size()) + " given, the model has " +
                                           std::to_string(exits) + " exits");
    double total = 0;
    for (double s : shares) {
        check(s >= 0 && s <= 1, "exit shares: each must lie in [0, 1]");
        total += s;
    }
    check(std::fabs(total - 1) <= 1e-3, "exit shares: they sum to " + std::to_string(total) + ", not 1");
    check_data_fits(model, data, "data");
    const int64_t n = data.size();
    check(n > 0, "exit shares: the data set is empty");

    // Every sample's top probability at every exit, from all-exits passes.
    std::vector<float> prob(size_t(n) * exits);
    Plan plan(model, backend, batch);
    const int64_t per_image = data.images.numel() / n;
    for (int64_t first = 0; first < n; first += batch) {
        const int rows = int(std::min<int64_t>(batch, n - first));
        plan.run_all(data.images.data() + first * per_image, rows);
        const int64_t classes = plan.exit_logits(0).numel() / rows;
        for (int i = 0; i < rows; ++i)
            for (int k = 0; k < exits; ++k)
                prob[size_t(first + i) * exits + k] = top_class(plan.exit_logits(k).data + i * classes, classes).prob;
    }

    std::vector<float> q(exits, 1.0f);
    std::vector<char> running(size_t(n), 1);
    std::vector<float> here;
    for (int k = 0; k + 1 < exits; ++k) {
        here.clear();
        for (int64_t i = 0; i < n; ++i)
            if (running[i]) here.push_back(prob[size_t(i) * exits + k]);
        const int64_t want = std::min<int64_t>(std::llround(shares[k] * double(n)), int64_t(here.size()));
        if (want == 0) {
            q[k] = 2.0f;  // a probability never reaches 2
        } else {
            std::nth_element(here.begin(), here.begin() + (want - 1), here.end(), std::greater<float>());
            q[k] = here[size_t(want - 1)];
        }
        for (int64_t i = 0; i < n; ++i)
            if (running[i] && exit_fires(k, exits, prob[size_t(i) * exits + k], q.data())) running[i] = 0;
    }
    return q;
}

std::vector<double> exit_shares(const Model& reference, Backend& backend, const Dataset& data, int batch) {
    const EvalResult seen = evaluate(reference, backend, data, reference.thresholds, batch);
    std::vector<double> shares;
    for (auto count : seen.exit_histogram) shares.push_back(double(count) / double(seen.count));
    return shares;
}

}  // namespace engine
