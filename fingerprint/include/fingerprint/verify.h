// Verifying a suspect against a fingerprint set.
//
// Time oracle: every input is sent R times in one shuffled, interleaved order after a warm-up;
// each input's latency is the median of its repetitions. Medians are grouped into levels at gaps
// well above the noise of a median and near the smallest step between exits, and the levels are
// mapped, in order, onto the exits whose latency profile they fit best (a scale fit in log space
// after removing the transport overhead measured by a request that runs no inference). Nothing
// about the suspect's speed is assumed and no calibration inputs are sent.
#pragma once
#include <string>
#include <vector>

#include "fingerprint/fingerprint_set.h"
#include "fingerprint/suspect.h"

namespace fp {

struct CheckOptions {
    bool time_oracle = true;  // false: read the exit index (white-box reference)
    int reps = 15;
    // Time oracle: more rounds of `reps` while the medians' noise is too large to separate the
    // suspect's adjacent exits, up to this many repetitions in all (at most reps: no growth).
    int max_reps = 120;
    int warmup_rounds = 2;
    double alpha = 1e-3;      // significance level of the match decision
    uint64_t seed = 1;
};

struct CheckResult {
    std::vector<int> observed_exit;      // per input (-1: undetermined)
    std::vector<double> latency_ms;      // per input: median over repetitions
    std::vector<double> jitter_ms;       // per input: noise of that median (MAD sigma / sqrt(R))
    std::vector<double> level_ms;        // latency levels found (time oracle)
    std::vector<int> level_exit;         // the exit each level was mapped to
    double overhead_ms = 0;              // transport/call overhead removed before the fit
    int reps = 0;                        // repetitions per input actually made
    int matches = 0;
    double match_rate = 0;
    double null_match_rate = 0;
    double p_value = 1;                  // P(matches >= observed | independent model)
    double rank_correlation = 0;         // Spearman(target exit, measured latency)
    double rank_p_value = 1;             // permutation p-value of that correlation
    std::vector<std::vector<int>> confusion;  // [target][observed], observed -1 dropped
    // Time oracle on a suspect that also reveals its exit (run in this process): per exit k, the
    // fraction of inputs that left at k which the time oracle put at k (-1: none left there).
    std::vector<double> oracle_agreement;
    double oracle_agreement_all = -1;
    std::string verdict;                 // "match" or "no-match"
    std::string oracle;
    double wall_s = 0;
};

CheckResult check_suspect(const FingerprintSet& set, Suspect& suspect, const CheckOptions& options);

// The relative latency of each exit levels are fitted to: the owner's measured latencies when they
// increase with depth (as they must on a quiet machine), else multiply-adds scaled to the owner's time.
std::vector<double> exit_profile(const FingerprintSet& set);

// In units of a median's noise (jitter_ms): exits_from_latencies starts a new level where sorted
// medians differ by more than kLevelGapWidths; the medians of one level's inputs (about ten) spread
// by some kLevelSpreadWidths; so check_suspect repeats rounds until the smallest expected step between
// exits exceeds kSeparableWidths, the gap with a level's spread on either side.
constexpr double kLevelGapWidths = 6.0, kLevelSpreadWidths = 3.0;
constexpr double kSeparableWidths = kLevelGapWidths + 2 * kLevelSpreadWidths;

// The level grouping and mapping on its own (exposed for tests): medians and jitters per input,
// the per-exit latency profile (exit_profile) and the overhead; returns the exit per input.
std::vector<int> exits_from_latencies(const std::vector<double>& latency_ms, const std::vector<double>& jitter_ms,
                                      const std::vector<double>& exit_profile, double overhead_ms,
                                      std::vector<double>* level_ms = nullptr, std::vector<int>* level_exit = nullptr);

// Writes an SVG plot of each input's latency grouped by target exit (atomically).
void write_latency_plot(const FingerprintSet& set, const CheckResult& result, const std::string& title,
                        const std::string& path);

}  // namespace fp
