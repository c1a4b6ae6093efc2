#include "engine/evaluate.h"

#include <chrono>

#include "engine/error.h"
#include "engine/exit_policy.h"
#include "engine/plan.h"

namespace engine {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

EvalResult evaluate(const Model& model, Backend& backend, const Dataset& data, const std::vector<float>& thresholds,
                    int batch, const EvalProgress& progress) {
    const auto start = std::chrono::steady_clock::now();
    check_data_fits(model, data, "data");
    const int exits = model.num_exits();
    check(int(thresholds.size()) == exits, "evaluate: one threshold per exit needed");
    check(data.size() > 0, "evaluate: the data set is empty");
    Plan plan(model, backend, batch);
    const int64_t per_image = data.images.numel() / data.size();

    EvalResult r;
    r.count = data.size();
    r.thresholds = thresholds;
    std::vector<int64_t> exit_correct(exits, 0);
    r.exit_histogram.assign(exits, 0);
    r.samples.resize(data.size());
    int64_t policy_correct = 0;
    double macs = 0;
    for (int64_t first = 0; first < data.size(); first += batch) {
        const int n = int(std::min<int64_t>(batch, data.size() - first));
        plan.run_all(data.images.data() + first * per_image, n);
        const int64_t classes = plan.exit_logits(0).numel() / n;
        for (int i = 0; i < n; ++i) {
            const int label = data.labels[first + i];
            bool decided = false;
            for (int k = 0; k < exits; ++k) {  // every exit's accuracy, and the first exit that fires
                const TopClass top = top_class(plan.exit_logits(k).data + i * classes, classes);
                exit_correct[k] += top.cls == label;
                if (decided || !exit_fires(k, exits, top.prob, thresholds.data())) continue;
                decided = true;
                r.samples[first + i] = {k, top.cls, top.prob};
                r.exit_histogram[k]++;
                policy_correct += top.cls == label;
                macs += double(plan.macs_to_exit()[k]);
            }
        }
        if (progress) progress(first + n, data.size());
    }
    r.accuracy = double(policy_correct) / r.count;
    for (int k = 0; k < exits; ++k) r.per_exit_accuracy.push_back(double(exit_correct[k]) / r.count);
    r.avg_macs_fraction = macs / r.count / double(plan.macs_to_exit().back());
    r.wall_s = seconds_since(start);
    return r;
}

std::vector<LatencyStats> exit_latencies(const Model& model, Backend& backend, const Dataset& data, int samples) {
    const int exits = model.num_exits();
    check_data_fits(model, data, "data");
    check(data.size() > 0, "exit latencies: the data set is empty");
    Plan plan(model, backend, 1);
    const int64_t per_image = data.images.numel() / data.size();
    std::vector<LatencyStats> out;
    SampleResult result;
    for (int k = 0; k < exits; ++k) {
        std::vector<float> q(exits, 2.0f);  // a probability never reaches 2: no earlier exit fires
        q[k] = 0.0f;
        std::vector<int64_t> ns;
        const int warmup = std::max(3, samples / 10);
        for (int s = -warmup; s < samples; ++s) {
            plan.run_early(data.images.data() + ((s + warmup) % data.size()) * per_image, 1, q.data(), &result);
            if (s >= 0) ns.push_back(result.ns);
        }
        out.push_back(latency_stats(ns));
    }
    return out;
}

}  // namespace engine
