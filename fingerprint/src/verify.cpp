#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
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

const char* verdict_name(Verdict v) {
    switch (v) {
        case Verdict::match:
            return "match";
        case Verdict::no_match:
            return "no-match";
        case Verdict::inconclusive:
            return "inconclusive";
    }
    return "inconclusive";
}

int inputs_in_merged_levels(const std::vector<int>& observed_exit, const std::vector<int>& target_exits,
                            const std::vector<int>& level_exit, int num_exits) {
    std::vector<char> claimed(std::max(num_exits, 0), 0);
    for (int e : level_exit)
        if (e >= 0 && e < num_exits) claimed[e] = 1;
    int merged = 0;
    for (size_t i = 0; i < observed_exit.size() && i < target_exits.size(); ++i) {
        const int e = observed_exit[i], t = target_exits[i];
        if (e < 0 || e >= num_exits || t < 0 || t >= num_exits || t == e || claimed[t]) continue;
        // The unclaimed exits between e's claimed neighbours.
        int lo = e, hi = e;
        while (lo > 0 && !claimed[lo - 1]) --lo;
        while (hi + 1 < num_exits && !claimed[hi + 1]) ++hi;
        merged += t >= lo && t <= hi;
    }
    return merged;
}

Decision decide_verdict(int matches, int undetermined, const std::vector<int>& target_exits, int num_exits,
                        double null_rate, double alpha, double beta, int looks, bool separable) {
    const int M = int(target_exits.size());
    engine::check(M > 0 && looks >= 1, "decide_verdict: needs inputs and at least one look");
    std::vector<int> per_exit(std::max(num_exits, 1), 0);
    for (int t : target_exits) per_exit.at(t)++;
    const double largest_share = double(*std::max_element(per_exit.begin(), per_exit.end())) / M;
    Decision d;
    d.p0 = std::clamp(std::max(null_rate, largest_share), 0.0, 0.99);
    d.p1 = std::min(d.p0 + kPirateLift, kMaxPirateRate);
    d.p_match = binomial_upper_tail(matches, M, d.p0);
    d.p_pirate = binomial_lower_tail(matches + undetermined, M, d.p1);
    const double a = alpha / looks, b = beta / looks;
    const bool match = d.p_match < a, no_match = d.p1 - d.p0 >= kMinPirateGap - 1e-12 && d.p_pirate < b;
    char buf[400];
    if (match && no_match) {
        d.verdict = Verdict::inconclusive;
        std::snprintf(buf, sizeof buf, "both tests reject (%d inputs are too few for these error rates)", M);
    } else if (match) {
        d.verdict = Verdict::match;
        std::snprintf(buf, sizeof buf, "P(>= %d of %d matches | independent, rate %.3f) = %.3g < alpha %.3g", matches,
                      M, d.p0, d.p_match, a);
    } else if (no_match && !separable) {
        d.verdict = Verdict::inconclusive;
        std::snprintf(buf, sizeof buf,
                      "timing noise hides the steps between exits: a no-match would be a guess "
                      "(allow more repetitions with --max-reps or check on a quieter machine)");
    } else if (no_match) {
        d.verdict = Verdict::no_match;
        std::snprintf(buf, sizeof buf, "P(<= %d of %d matches | copy keeping rate %.3f) = %.3g < beta %.3g",
                      matches + undetermined, M, d.p1, d.p_pirate, b);
    } else if (undetermined > 0) {
        d.verdict = Verdict::inconclusive;
        std::snprintf(buf, sizeof buf,
                      "%d of %d inputs undetermined by timing noise; match p %.3g (needs < %.3g), "
                      "no-match p %.3g (needs < %.3g)",
                      undetermined, M, d.p_match, a, d.p_pirate, b);
    } else if (d.p1 - d.p0 < kMinPirateGap - 1e-12) {
        d.verdict = Verdict::inconclusive;
        std::snprintf(buf, sizeof buf,
                      "%d of %d matches; the null rate %.3f is too close to what a copy keeps (%.3f) for a no-match, "
                      "and the match p %.3g is not < %.3g (re-craft: fp_gen --noise, more --per-exit)",
                      matches, M, d.p0, d.p1, d.p_match, a);
    } else {
        d.verdict = Verdict::inconclusive;
        std::snprintf(buf, sizeof buf,
                      "%d of %d matches lies between the null rate %.3f and the pirate rate %.3f: match p %.3g "
                      "(needs < %.3g), no-match p %.3g (needs < %.3g)",
                      matches, M, d.p0, d.p1, d.p_match, a, d.p_pirate, b);
    }
    d.reason = buf;
    return d;
}

int copies_for_noise(double request_noise_ms, double smallest_step_ms, int max_reps) {
    if (!(smallest_step_ms > 0)) return kMaxCopies;  // the noise hides even the suspect's speed
    // A median of n repetitions has noise 1.25 sigma / sqrt(n); the gaps resolve steps of
    // kSeparableWidths of it.
    const double ratio = kSeparableWidths * 1.25 * request_noise_ms / smallest_step_ms;
    const double needed_reps = ratio * ratio;
    if (needed_reps <= max_reps) return 1;
    return std::min(kMaxCopies, int(std::ceil(std::sqrt(needed_reps / (0.5 * max_reps)))));
}

std::vector<int> round_sizes(int reps, int max_reps) {
    std::vector<int> sizes{reps};
    int total = reps;
    const int second_look = std::min(kSecondLookReps, max_reps);
    if (second_look > total) sizes.push_back(second_look - total), total = second_look;
    while (total + reps <= max_reps) sizes.push_back(reps), total += reps;
    return sizes;
}

CheckResult check_suspect(const FingerprintSet& set, Suspect& suspect, const CheckOptions& opt) {
    const auto start = std::chrono::steady_clock::now();
    const int M = set.size(), K = set.num_exits();
    auto shape = suspect.input_shape();
    const auto& in = set.inputs.shape();
    engine::check(shape.size() == 4 && shape[1] == in[1] && shape[2] == in[2] && shape[3] == in[3],
                  suspect.describe() + ": takes inputs of another shape than the fingerprint's " + in.str());
    engine::check(!set.is_label(), "a label fingerprint (crafted on " + set.model_name +
                                       ") is checked with the label oracle, not the " +
                                       (opt.time_oracle ? "time" : "exit") + " oracle");
    engine::check(opt.time_oracle || suspect.reveals_exit(),
                  suspect.describe() + ": does not reveal exits; only the time oracle can verify it");
    engine::check(opt.reps >= 1, "fp_check: --reps must be at least 1");
    engine::check(opt.copies >= 0 && opt.copies <= kMaxCopies,
                  "fp_check: --copies must lie in [0, " + std::to_string(kMaxCopies) + "] (0: chosen from the noise)");
    engine::check(opt.quantile == 0 || (opt.quantile > 0 && opt.quantile < 1),
                  "fp_check: --quantile must lie in (0, 1), or be 0 for the least noisy of the candidates");
    engine::check(opt.alpha > 0 && opt.alpha < 1 && opt.beta > 0 && opt.beta < 1,
                  "fp_check: --alpha and --beta must lie in (0, 1)");
    const int64_t per = in.numel() / M;
    auto image = [&](int i) { return set.inputs.data() + i * per; };

    CheckResult r;
    r.oracle = opt.time_oracle ? "time" : "exit";
    int copies = opt.time_oracle && opt.copies > 0 ? opt.copies : 1;
    auto query = [&](int i) {
        ++r.queries;
        r.images += copies;
        return suspect.query(image(i), copies);
    };
    // Warm-up: caches, branch predictors and the suspect's own lazy set-up.
    for (int w = 0; w < opt.warmup_rounds; ++w)
        for (int i = 0; i < M; ++i) query(i);

    // Rounds of every (input, repetition) pair once, in one shuffled order, so that drift in the
    // suspect's speed spreads over all inputs instead of biasing some.
    std::mt19937_64 rng(opt.seed);
    std::vector<std::vector<double>> samples(M);
    std::vector<int> revealed(M, -1);
    std::vector<double> overhead;
    std::vector<double> candidates(std::begin(kCandidateQuantiles), std::end(kCandidateQuantiles));
    if (opt.quantile > 0) candidates = {opt.quantile};
    // Rounds at each number of copies (round_sizes); `round` counts those made at the current one.
    const std::vector<int> rounds = opt.time_oracle ? round_sizes(opt.reps, opt.max_reps) : std::vector<int>{opt.reps};
    size_t round = 0;
    auto measure_round = [&] {
        const int reps = rounds[round++];
        std::vector<int> schedule;  // input i, reps times
        for (int i = 0; i < M; ++i) schedule.insert(schedule.end(), reps, i);
        std::shuffle(schedule.begin(), schedule.end(), rng);
        for (size_t s = 0; s < schedule.size(); ++s) {
            const int i = schedule[s];
            Answer a = query(i);
            samples[i].push_back(a.ns * 1e-6);
            revealed[i] = a.exit;
            if (s % 8 == 0) {
                ++r.queries;
                overhead.push_back(suspect.null_query_ns(copies) * 1e-6);
            }
        }
        r.reps += reps;
        // Each input's latency: a quantile of its repetitions, and the noise of that estimate.
        double least_noise = 0;
        std::vector<double> latency(M), jitter(M);
        for (size_t c = 0; c < candidates.size(); ++c) {
            for (int i = 0; i < M; ++i) quantile_and_error(samples[i], candidates[c], latency[i], jitter[i]);
            const double noise = median(jitter);
            if (c == 0 || noise < least_noise)
                least_noise = noise, r.quantile = candidates[c], r.latency_ms = latency, r.jitter_ms = jitter;
        }
        r.overhead_ms = quantile(overhead, r.quantile);
    };
    const std::vector<double> profile = exit_profile(set);
    // Rounds continue until adjacent exits stay apart as levels (kSeparableWidths, verify.h; at 9
    // widths the demo's pirate had two exits merged in half its checks once the engine got faster).
    // The step is the profile's smallest, scaled to the suspect's measured speed. Fewer than
    // kMinTimedReps repetitions give no estimate of the noise at all.
    double smallest_step = std::numeric_limits<double>::infinity();
    for (int k = 1; k < K; ++k) smallest_step = std::min(smallest_step, profile[k] - profile[k - 1]);
    std::vector<double> expected;  // the owner's latency for each input's target exit
    for (int i = 0; i < M; ++i) expected.push_back(profile[set.target_exits[i]]);
    const double expected_median = median(expected);
    // widths: kSeparableWidths for grouping at gaps, kProfileSeparableWidths for the profile fit.
    auto separable = [&](double widths) {
        const double scale = std::max(median(r.latency_ms) - r.overhead_ms, 0.0) / expected_median;
        r.smallest_step_ms = smallest_step * scale;
        r.resolvable_step_ms = widths * median(r.jitter_ms);
        return r.reps >= kMinTimedReps && r.resolvable_step_ms < r.smallest_step_ms;
    };
    // Time oracle: each input's exit from the quantiles of all its repetitions, grouped at the gaps
    // between levels where the noise resolves the steps, else placed on the owner's profile fitted to
    // the suspect's speed (measured with bench/fp_jitter.sh: under 0.1 ms of network jitter the gaps
    // merged exits 0-1 and 2-3 of the demo's pirate, 40 of 80; the fit put all 80 at their exits on
    // the same latencies, none misplaced). Then each half of its repetitions (alternate ones, so both
    // halves span the same time) must fall nearest to the same level, else the input is undetermined:
    // the noise moves it between levels. (Regrouping each half on its own would merge levels that the
    // whole resolves, at twice the noise of the whole.) Returns whether the profile placed them.
    auto place_by_time = [&](bool steps_resolved) {
        r.observed_exit.clear();
        if (!steps_resolved)
            r.observed_exit =
                exits_from_profile_fit(r.latency_ms, r.jitter_ms, profile, r.overhead_ms, &r.level_ms, &r.level_exit);
        const bool on_profile = !r.observed_exit.empty();
        if (!on_profile)
            r.observed_exit =
                exits_from_latencies(r.latency_ms, r.jitter_ms, profile, r.overhead_ms, &r.level_ms, &r.level_exit);
        auto nearest_level_exit = [&](double ms) { return r.level_exit[nearest_index(r.level_ms, ms)]; };
        for (int i = 0; i < M; ++i)
            for (size_t half = 0; half < 2; ++half) {
                std::vector<double> v;
                for (size_t s = half; s < samples[i].size(); s += 2) v.push_back(samples[i][s]);
                if (v.empty() || nearest_level_exit(quantile(v, r.quantile)) != r.observed_exit[i])
                    r.observed_exit[i] = -1;
            }
        return on_profile;
    };

    // Adjacent levels of one copy stand the owner's step between their exits apart, at the suspect's
    // speed. Levels much closer are one exit split in two: the suspect's speed moved during the check
    // (inputs timed in a fast stretch read fast) or it is another network. No no-match is read from
    // them (verify.h, kMinLevelGapSteps). Where the owner's own timing shows no step between two exits
    // (ResNet-56's last two), their levels cannot be judged.
    auto levels_apart = [&] {
        const auto& owner = set.owner_latency_ms;
        std::vector<double> ratios;  // the suspect's speed against the owner's, level by level
        for (size_t l = 0; l < r.level_ms.size(); ++l)
            ratios.push_back((r.level_ms[l] - r.overhead_ms) / owner[r.level_exit[l]]);
        const double speed = median(ratios);
        for (size_t l = 1; l < r.level_ms.size(); ++l) {
            const double step = owner[r.level_exit[l]] - owner[r.level_exit[l - 1]];
            if (step > 0 && r.level_ms[l] - r.level_ms[l - 1] < kMinLevelGapSteps * step * speed) return false;
        }
        return true;
    };

    // One look at the repetitions so far: places the inputs and reads the verdict into d. True once
    // decided (noise cannot make a match: decide_verdict), or once the steps are resolved and every
    // input placed at a level of its own: more repetitions would add no evidence.
    Decision d;
    auto look = [&] {
        r.separable = !opt.time_oracle || separable(kSeparableWidths);
        if (opt.time_oracle) {
            r.on_profile = place_by_time(r.separable);
            if (r.on_profile) r.separable = separable(kProfileSeparableWidths);
            r.separable = r.separable && levels_apart();
        } else
            r.observed_exit = revealed;
        r.matches = r.undetermined = 0;
        for (int i = 0; i < M; ++i) {
            r.matches += r.observed_exit[i] == set.target_exits[i];
            r.undetermined += r.observed_exit[i] < 0;
        }
        r.merged = opt.time_oracle ? inputs_in_merged_levels(r.observed_exit, set.target_exits, r.level_exit, K) : 0;
        d = decide_verdict(r.matches, r.undetermined + r.merged, set.target_exits, K, set.null_match_rate, opt.alpha,
                           opt.beta, r.looks, r.separable);
        return d.verdict != Verdict::inconclusive || (r.separable && r.undetermined == 0 && r.merged == 0);
    };

    const bool choose_copies = opt.time_oracle && opt.copies == 0;
    // Looks: the rounds at the final number of copies, and the first round at each number before it.
    r.looks = int(rounds.size()) + (choose_copies ? kCopyEscalations : 0);
    measure_round();
    for (int escalations = 0;;) {
        if (look()) break;  // which also scaled r.smallest_step_ms to the suspect's speed
        // Copies per request: where the first round at a number of copies does not decide, from the
        // noise of one request, at most kCopyEscalations times.
        if (choose_copies && round == 1 && escalations < kCopyEscalations && copies < kMaxCopies) {
            std::vector<double> spread;
            for (const auto& v : samples) spread.push_back(mad_sigma(v));
            const int factor = copies_for_noise(median(spread), r.smallest_step_ms, opt.max_reps);
            if (factor > 1) {
                ++escalations;
                copies = std::min(kMaxCopies, copies * factor);  // start again: times of another scale do not mix
                for (auto& v : samples) v.clear();
                overhead.clear();
                r.reps = 0;
                round = 0;
                for (int i = 0; i < M; ++i) query(i);  // the suspect's first requests of this size
                measure_round();
                continue;
            }
        }
        if (round == rounds.size()) break;
        measure_round();
    }
    r.copies = copies;

    r.confusion.assign(K, std::vector<int>(K, 0));
    for (int i = 0; i < M; ++i)
        if (r.observed_exit[i] >= 0 && r.observed_exit[i] < K) r.confusion[set.target_exits[i]][r.observed_exit[i]]++;
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
    r.take(d);
    std::vector<double> targets(set.target_exits.begin(), set.target_exits.end());
    r.rank_correlation = spearman(targets, r.latency_ms);
    r.rank_p_value = spearman_permutation_p(targets, r.latency_ms, 2000, opt.seed);
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

}  // namespace fp
