#include <algorithm>
#include <cmath>
#include <chrono>
#include <limits>
#include <numeric>
#include <random>

#include "engine/error.h"
#include "fingerprint/stats.h"
#include "fingerprint/verify.h"

namespace fp {

std::vector<double> exit_profile(const FingerprintSet& set) {
    const auto& owner = set.owner_latency_ms;
    bool increasing = true;
    for (size_t k = 1; k < owner.size(); ++k) increasing &= owner[k] > owner[k - 1];
    if (increasing) return owner;
    // A noisy owner measurement: fall back to work done, scaled to the owner's full-depth time.
    std::vector<double> profile;
    for (double macs : set.exit_macs) profile.push_back(macs / set.exit_macs.back() * owner.back());
    return profile;
}

CheckResult check_suspect(const FingerprintSet& set, Suspect& suspect, const CheckOptions& opt) {
    const auto start = std::chrono::steady_clock::now();
    const int M = set.size(), K = set.num_exits();
    auto shape = suspect.input_shape();
    const auto& in = set.inputs.shape();
    engine::check(shape.size() == 4 && shape[1] == in[1] && shape[2] == in[2] && shape[3] == in[3],
                  suspect.describe() + ": takes inputs of another shape than the fingerprint's " + in.str());
    engine::check(opt.time_oracle || suspect.reveals_exit(),
                  suspect.describe() + ": does not reveal exits; only the time oracle can verify it");
    engine::check(opt.reps >= 1, "fp_check: --reps must be at least 1");
    const int64_t per = in.numel() / M;
    auto image = [&](int i) { return set.inputs.data() + i * per; };

    CheckResult r;
    r.oracle = opt.time_oracle ? "time" : "exit";
    // Warm-up: caches, branch predictors and the suspect's own lazy set-up.
    for (int w = 0; w < opt.warmup_rounds; ++w)
        for (int i = 0; i < M; ++i) suspect.query(image(i));

    // Rounds of every (input, repetition) pair once, in one shuffled order, so that drift in the
    // suspect's speed spreads over all inputs instead of biasing some.
    std::mt19937_64 rng(opt.seed);
    std::vector<std::vector<double>> samples(M);
    std::vector<int> revealed(M, -1);
    std::vector<double> overhead;
    auto measure_round = [&] {
        std::vector<int> schedule;  // input i, opt.reps times
        for (int i = 0; i < M; ++i) schedule.insert(schedule.end(), opt.reps, i);
        std::shuffle(schedule.begin(), schedule.end(), rng);
        for (size_t s = 0; s < schedule.size(); ++s) {
            const int i = schedule[s];
            Answer a = suspect.query(image(i));
            samples[i].push_back(a.ns * 1e-6);
            revealed[i] = a.exit;
            if (s % 8 == 0) overhead.push_back(suspect.null_query_ns() * 1e-6);
        }
        r.reps += opt.reps;
        r.overhead_ms = median(overhead);
        r.latency_ms.clear(), r.jitter_ms.clear();
        for (int i = 0; i < M; ++i) {
            r.latency_ms.push_back(median(samples[i]));
            // The noise of a median of R samples: 1.25 sigma / sqrt(R) for a normal spread.
            r.jitter_ms.push_back(1.2533 * mad_sigma(samples[i]) / std::sqrt(double(samples[i].size())));
        }
    };
    measure_round();
    const std::vector<double> profile = exit_profile(set);
    // Rounds continue until adjacent exits stay apart as levels (kSeparableWidths, verify.h; at 9
    // widths the demo's pirate had two exits merged in half its checks once the engine got faster).
    // The step is the profile's smallest, scaled to the suspect's measured speed.
    double smallest_step = std::numeric_limits<double>::infinity();
    for (int k = 1; k < K; ++k) smallest_step = std::min(smallest_step, profile[k] - profile[k - 1]);
    std::vector<double> expected;  // the owner's latency for each input's target exit
    for (int i = 0; i < M; ++i) expected.push_back(profile[set.target_exits[i]]);
    const double expected_median = median(expected);
    auto separable = [&] {
        const double scale = std::max(median(r.latency_ms) - r.overhead_ms, 0.0) / expected_median;
        return kSeparableWidths * median(r.jitter_ms) < smallest_step * scale;
    };
    while (opt.time_oracle && r.reps + opt.reps <= opt.max_reps && !separable()) measure_round();

    if (opt.time_oracle)
        r.observed_exit = exits_from_latencies(r.latency_ms, r.jitter_ms, profile, r.overhead_ms,
                                               &r.level_ms, &r.level_exit);
    else
        r.observed_exit = revealed;

    r.confusion.assign(K, std::vector<int>(K, 0));
    for (int i = 0; i < M; ++i) {
        r.matches += r.observed_exit[i] == set.target_exits[i];
        if (r.observed_exit[i] >= 0) r.confusion[set.target_exits[i]][r.observed_exit[i]]++;
    }
    r.match_rate = double(r.matches) / M;
    if (opt.time_oracle && suspect.reveals_exit()) {
        std::vector<int> left(K, 0), agreed(K, 0);
        for (int i = 0; i < M; ++i) {
            if (revealed[i] < 0 || revealed[i] >= K) continue;
            left[revealed[i]]++;
            agreed[revealed[i]] += r.observed_exit[i] == revealed[i];
        }
        for (int k = 0; k < K; ++k) r.oracle_agreement.push_back(left[k] ? double(agreed[k]) / left[k] : -1.0);
        const int total = std::accumulate(left.begin(), left.end(), 0);
        if (total) r.oracle_agreement_all = double(std::accumulate(agreed.begin(), agreed.end(), 0)) / total;
    }
    r.null_match_rate = set.null_match_rate;
    r.p_value = binomial_upper_tail(r.matches, M, set.null_match_rate);
    std::vector<double> targets(set.target_exits.begin(), set.target_exits.end());
    r.rank_correlation = spearman(targets, r.latency_ms);
    r.rank_p_value = spearman_permutation_p(targets, r.latency_ms, 2000, opt.seed);
    r.verdict = r.p_value < opt.alpha ? "match" : "no-match";
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

}  // namespace fp
