// The label oracle: the prediction-based baselines (craft_label.h) decided by the same rule as the
// timing fingerprint (decide_verdict), so that their rows compare in one table.
#include <chrono>

#include "engine/error.h"
#include "fingerprint/verify.h"

namespace fp {

Decision decide_for_set(const FingerprintSet& set, int matches, int undetermined, double alpha, double beta, int looks,
                        bool separable) {
    return set.is_label() ? decide_verdict(matches, undetermined, set.target_labels, set.num_classes,
                                           set.null_match_rate, alpha, beta, looks, separable)
                          : decide_verdict(matches, undetermined, set.target_exits, set.num_exits(),
                                           set.null_match_rate, alpha, beta, looks, separable);
}

CheckResult check_labels(const FingerprintSet& set, Suspect& suspect, const CheckOptions& opt) {
    const auto start = std::chrono::steady_clock::now();
    engine::check(set.is_label(), "a timing fingerprint (crafted on " + set.model_name +
                                      ") is checked with the time or the exit oracle, not the label oracle");
    const int M = set.size(), C = set.num_classes;
    const auto shape = suspect.input_shape();
    const auto& in = set.inputs.shape();
    engine::check(shape.size() == 4 && shape[1] == in[1] && shape[2] == in[2] && shape[3] == in[3],
                  suspect.describe() + ": takes inputs of another shape than the fingerprint's " + in.str());
    engine::check(opt.alpha > 0 && opt.alpha < 1 && opt.beta > 0 && opt.beta < 1,
                  "fp_check: --alpha and --beta must lie in (0, 1)");
    const int64_t per = in.numel() / M;
    CheckResult r;
    r.oracle = "label";
    r.reps = 1;
    r.confusion.assign(C, std::vector<int>(C, 0));
    for (int i = 0; i < M; ++i) {
        const Answer a = suspect.query(set.inputs.data() + i * per);
        ++r.queries;
        r.observed_exit.push_back(a.exit);
        r.latency_ms.push_back(a.ns * 1e-6);
        r.matches += a.cls == set.target_labels[i];
        if (a.cls >= 0 && a.cls < C) r.confusion[set.target_labels[i]][a.cls]++;  // another model may have more classes
    }
    const Decision d = decide_for_set(set, r.matches, 0, opt.alpha, opt.beta, 1, true);
    r.match_rate = double(r.matches) / M;
    r.take(d);
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

}  // namespace fp
