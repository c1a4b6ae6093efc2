// Verifying a suspect against a fingerprint set.
//
// Time oracle: every input is sent R times in one shuffled, interleaved order after a warm-up;
// each input's latency is a quantile of its repetitions (CheckOptions::quantile, by default the least
// noisy of kCandidateQuantiles): delays from other jobs on the machine and from the network only
// ever add time, so the fast side of the distribution moves least (measured with
// bench/fp_jitter.sh). The latencies are grouped into levels at gaps well above their noise and near
// the smallest step between exits, and the levels are mapped, in order, onto the exits whose latency
// profile they fit best (a scale fit in log space after removing the transport overhead measured by
// a request that runs no inference); where the noise hides those gaps, inputs are placed on the
// profile fitted to the suspect's speed instead (exits_from_profile_fit). Nothing about the
// suspect's speed is assumed and no calibration inputs are sent.
#pragma once
#include <string>
#include <vector>

#include "fingerprint/fingerprint_set.h"
#include "fingerprint/suspect.h"

namespace fp {

// The verdict has three values. "match" and "no-match" each come with an explicit error rate
// (decide_verdict below); "inconclusive" is what noise, or a fingerprint too small for the evidence
// asked for, gives instead of a guess.
enum class Verdict { match, no_match, inconclusive };
const char* verdict_name(Verdict v);  // "match", "no-match", "inconclusive"

// One-sided delays (other jobs, network jitter over a sharp floor) are seen through by a low quantile;
// noise spread on both sides of the true time (a virtual machine's timer, measured through fp_proxy:
// 23/80 placed at the 0.05 quantile, 67/80 at the median, in one hour) by the median. The choice
// looks at the noise of the estimates only, never at the targets.
constexpr double kCandidateQuantiles[] = {0.05, 0.15, 0.3, 0.5};

struct CheckOptions {
    bool time_oracle = true;  // false: read the exit index (white-box reference); check_labels ignores it
    int reps = 15;
    // Time oracle: more rounds (round_sizes: the second tops up to kSecondLookReps, then `reps` at
    // a time) while the noise hides the step between the suspect's adjacent exits or leaves the
    // verdict inconclusive, up to this many repetitions in all (at most reps: one round).
    int max_reps = 120;
    int warmup_rounds = 2;
    // An input's latency: this quantile of its repetitions (0.5: the median); 0: whichever of
    // kCandidateQuantiles leaves the least noise (the median width of the estimates).
    double quantile = 0;
    // Time oracle: copies of an input per request (copies_for_noise), up to kMaxCopies; 0: one, or
    // more where the first round's noise would need more than max_reps to resolve the exit steps.
    int copies = 0;
    double alpha = 1e-3;     // bound on P(match | independent model): the false-accusation rate
    double beta = 1e-2;      // bound on P(no-match | copy that keeps the pirate-level match rate)
    uint64_t seed = 1;
};

// The decision rule, a fixed-sample form of Wald's sequential probability ratio test on the number
// of fingerprint inputs that leave the suspect at their target exit. Of M inputs, `matches` were
// observed at their target and `undetermined` could not be placed (the two halves of their
// repetitions disagree, or the noise hides the steps between exits); they count as non-matches for
// the match test and as matches for the no-match test, so noise can only push towards inconclusive.
//   H0 (independent model): each input matches with probability p0 = the fingerprint's null rate,
//      raised to the largest share of targets at one exit (a suspect that answers every input at
//      one speed matches that share by construction).
//   H1 (a copy of the owner's model): each input matches with probability at least
//      p1 = min(p0 + kPirateLift, kMaxPirateRate). Pirates keep less than all of a fingerprint
//      (measured: the copies fp_check catches keep 0.82 (ResNet-56 fine-tuned) to 1.0 of it), so a
//      p1 above kMaxPirateRate would call such copies "no-match"; when the cap leaves p1 less than
//      kMinPirateGap above p0, the fingerprint cannot tell copies from independent models and
//      no-match is never given. (At a cap of 0.8 a null above 0.65, which one held-out seed of
//      small_s1 often gives (craft.h, kSeedSpread), left no room for a no-match at all.)
//   match     when P(X >= matches | M, p0) < alpha / looks           (false accusation <= alpha)
//   no-match  when P(X <= matches + undetermined | M, p1) < beta / looks, p1 - p0 >= kMinPirateGap
//             and the exit steps were resolved (separable)           (missed copy <= beta)
//   else      inconclusive.
// `looks` is how many times the time oracle may decide after a round of repetitions (round_sizes,
// plus the first round at each number of copies); dividing both error rates by it (Bonferroni)
// keeps them valid however early it stops.
// "no-match" thus means "not a copy that keeps p1 of the fingerprint"; a pirate below p1 is out of
// what a fingerprint of this size and null can tell apart from an independent model.
constexpr double kPirateLift = 0.25, kMaxPirateRate = 0.9, kMinPirateGap = 0.15;

struct Decision {
    Verdict verdict = Verdict::inconclusive;
    double p0 = 0, p1 = 0;  // null and pirate-level match rates tested against
    double p_match = 1;     // P(X >= matches | M, p0): the p-value of the match test
    double p_pirate = 1;    // P(X <= matches + undetermined | M, p1)
    std::string reason;     // one line: why this verdict
};
Decision decide_verdict(int matches, int undetermined, const std::vector<int>& target_exits, int num_exits,
                        double null_rate, double alpha, double beta, int looks, bool separable);

struct CheckResult {
    std::vector<int> observed_exit;  // per input (-1: undetermined)
    std::vector<double> latency_ms;  // per input: the quantile of its repetitions
    std::vector<double> jitter_ms;   // per input: the standard error of that quantile
    std::vector<double> level_ms;    // latency levels found (time oracle)
    std::vector<int> level_exit;     // the exit each level was mapped to
    double overhead_ms = 0;          // transport/call overhead removed before the fit
    double quantile = 0;             // the quantile of its repetitions each input's latency was read at
    bool on_profile = false;         // inputs placed on the owner's profile (exits_from_profile_fit), not at gaps
    int reps = 0;                    // repetitions per input actually made
    int queries = 0;                 // requests sent in all (warm-up, fingerprint, overhead probes)
    int copies = 1;                  // copies of the input per request in the rounds decided on
    int64_t images = 0;              // images the suspect ran in all (a request of c copies runs c)
    int looks = 1;                   // decisions the time oracle could take (error rates divided by it)
    bool separable = true;           // the noise left the exit steps resolvable, and no levels too close
    double resolvable_step_ms = 0;   // smallest exit step the final noise resolves (kSeparableWidths widths)
    double smallest_step_ms = 0;     // smallest step between the suspect's exits expected (profile, scaled)
    int matches = 0;
    int undetermined = 0;
    int merged = 0;  // time oracle: inputs off target only where levels may have merged (inputs_in_merged_levels)
    double match_rate = 0;
    double null_match_rate = 0;               // p0 of the decision
    double pirate_match_rate = 0;             // p1 of the decision
    double p_value = 1;                       // P(matches >= observed | independent model)
    double p_value_pirate = 1;                // P(matches + undetermined + merged <= observed | copy at p1)
    double rank_correlation = 0;              // Spearman(target exit, measured latency)
    double rank_p_value = 1;                  // permutation p-value of that correlation
    std::vector<std::vector<int>> confusion;  // [target][observed]; -1 and exits the owner lacks dropped
    // Time oracle on a suspect that also reveals its exit (run in this process): per exit k, the
    // fraction of inputs that left at k which the time oracle put at k (-1: none left there).
    std::vector<double> oracle_agreement;
    double oracle_agreement_all = -1;
    Verdict verdict = Verdict::inconclusive;
    std::string reason;
    std::string oracle;
    double wall_s = 0;

    void take(const Decision& d) {  // the decision's rates, p-values, verdict and reason
        null_match_rate = d.p0, pirate_match_rate = d.p1, p_value = d.p_match, p_value_pirate = d.p_pirate;
        verdict = d.verdict, reason = d.reason;
    }
};

// Timing fingerprints only (a label set throws): the time or the exit oracle.
CheckResult check_suspect(const FingerprintSet& set, Suspect& suspect, const CheckOptions& options);

// The label oracle, for label fingerprints only (a timing set throws; craft_label.h): each input is
// sent once and matches where the suspect answers its expected class. decide_verdict takes the
// expected labels as the targets, so the null is raised to the largest share of one label, with
// one look and nothing undetermined. The confusion table is [expected class][answered class].
CheckResult check_labels(const FingerprintSet& set, Suspect& suspect, const CheckOptions& options);

// decide_verdict on a set's own targets: exits of a timing set, expected labels of a label set.
Decision decide_for_set(const FingerprintSet& set, int matches, int undetermined, double alpha, double beta, int looks,
                        bool separable);

// The relative latency of each exit levels are fitted to: the owner's measured latencies when they
// increase with depth (as they must on a quiet machine), else multiply-adds scaled to the owner's time.
std::vector<double> exit_profile(const FingerprintSet& set);

// In units of a median's noise (jitter_ms): exits_from_latencies starts a new level where sorted
// medians differ by more than kLevelGapWidths; the medians of one level's inputs (about ten) spread
// by some kLevelSpreadWidths; so check_suspect repeats rounds until the smallest expected step between
// exits exceeds kSeparableWidths, the gap with a level's spread on either side.
constexpr double kLevelGapWidths = 6.0, kLevelSpreadWidths = 3.0;
constexpr double kSeparableWidths = kLevelGapWidths + 2 * kLevelSpreadWidths;
// Fewer repetitions per input than this give no estimate of a median's noise: never separable.
constexpr int kMinTimedReps = 4;
// Adjacent levels closer than this share of the owner's step between their exits (at the suspect's
// speed) are not two exits of one copy: the steps count as unresolved (no no-match) and rounds go
// on. On the demo's fingerprint the closest levels stood 0.94-1.64 of the smallest step between
// exits apart for the pirate, independent seeds and other networks; in a check where the machine ran
// faster for a stretch, 0.53, and the pirate read as no-match (against the owner's steps between the
// exits those levels were mapped to, at the median level's speed: 0.64 and 0.35).
constexpr double kMinLevelGapSteps = 0.7;

// Inputs observed off their target exit where the time oracle may have merged levels: no level
// was mapped to the target, and the target lies between the exits of the levels on either side of
// the observed one (e.g. levels at exits 1 and 3 of 0..3: exit 0 may hide in the level of 1, exit
// 2 in either). Noise that merges two exits' levels must not read as a suspect that leaves at the
// wrong exit: these inputs count as matches for the no-match test, like undetermined ones.
int inputs_in_merged_levels(const std::vector<int>& observed_exit, const std::vector<int>& target_exits,
                            const std::vector<int>& level_exit, int num_exits);

// The level grouping and mapping on its own (exposed for tests): medians and jitters per input,
// the per-exit latency profile (exit_profile) and the overhead; returns the exit per input, -1 for
// the inputs of a level smaller than kMinLevelInputs where the levels outnumber the exits (inputs
// timed apart from the rest, not an exit).
constexpr int kMinLevelInputs = 3;
std::vector<int> exits_from_latencies(const std::vector<double>& latency_ms, const std::vector<double>& jitter_ms,
                                      const std::vector<double>& exit_profile, double overhead_ms,
                                      std::vector<double>* level_ms = nullptr, std::vector<int>* level_exit = nullptr);

// Where noise hides the gaps between levels (network jitter), the levels still stand where the
// owner's profile puts them at the suspect's speed: overhead_ms + speed * exit_profile[k]. The speed
// is fitted to the latencies alone (never the targets), and each input is placed at the nearest
// level, or left undetermined (-1) where it lies within kProfileMarginWidths of its noise
// (jitter_ms) of the midpoint to the next level. level_ms receives the levels at least
// kMinLevelInputs inputs were placed at, and level_exit their exits.
// Returns nothing where the profile does not fit: the median input lies more than kProfileFitWidths
// of its noise from its level (measured under 0-1 ms of jitter on the demo's fingerprint: 0.5-1.3
// for copies and same-architecture models, 4.5-18 for mobilenet_s1, whose levels stand elsewhere).
// The margin of 1.5 widths placed 75 of the pirate's 80 inputs at 0.1 ms of jitter and misplaced
// none (on the same latencies 3 widths placed 40).
std::vector<int> exits_from_profile_fit(const std::vector<double>& latency_ms, const std::vector<double>& jitter_ms,
                                        const std::vector<double>& exit_profile, double overhead_ms,
                                        std::vector<double>* level_ms = nullptr,
                                        std::vector<int>* level_exit = nullptr);
// An input is also undetermined where another fit of the speed, with a squared residual within
// kProfileAmbiguity times the best, places it at another exit: ResNet-56's steps are nearly alike,
// and where a copy sent few inputs to one exit a fit slipped by an exit beat the right one by 3 %
// (through fp_proxy at 0.1 ms; the copy read as no-match). Fits slipped so stood 1.4-1.9 times the
// best on other ResNet-56 checks, and 8 or more on the small model's.
constexpr double kProfileMarginWidths = 1.5, kProfileFitWidths = 2.0, kProfileAmbiguity = 2.0;
// Placed on the profile, the steps count as resolved (a no-match may be read) where the smallest
// step exceeds this many widths of the noise: a margin on either side of the midpoint and a width
// to spare, so that most inputs of a copy are placed, not left undetermined.
constexpr double kProfileSeparableWidths = 2 * kProfileMarginWidths + 3.0;

// Network jitter stays the same per request however long the request runs, so a request carrying
// c copies of an input (answered one after another) stretches the steps between exits c times
// against it, and the repetitions needed fall by up to c^2. From the noise of one request
// (request_noise_ms, a robust sigma of an input's repetitions) and the suspect's smallest step at
// the current number of copies: 1 where max_reps repetitions resolve the step at the gaps
// (kSeparableWidths), else the least factor that lets half of max_reps do it were the noise
// unchanged. The gaps' margin, not the profile's: where max_reps only just resolved the step on the
// profile, a fine-tuned ResNet-56 through fp_proxy at 0.5 ms was left inconclusive with 37 of 84
// inputs undetermined; half of max_reps at the gaps also sent a loopback check to 4 copies (4,370
// queries against 1,510) on a burst of the machine's noise. The
// noise of the computation grows with the copies, so check_suspect asks again after a round at the
// new number, up to kCopyEscalations times in all. (The noise of the latencies as read, at a low
// quantile, chose fewer copies through fp_proxy at 0.1-5 ms and needed more rounds: 4,370-7,520
// queries on the demo's fingerprint, and a check of resnet56_s3 at 0.1 ms ended inconclusive.)
int copies_for_noise(double request_noise_ms, double smallest_step_ms, int max_reps);
constexpr int kCopyEscalations = 3;
constexpr int kMaxCopies = 64;

// The time oracle's rounds at one number of copies: `reps`, then up to kSecondLookReps in all, then
// `reps` at a time while the total stays within max_reps; each ends in a look. The second, short
// round lets a check that one round left just short of deciding (a few inputs undetermined, the
// step not quite resolved) decide within 100 x 20 queries, the budget issue 15 sets, instead of
// twice the first round's.
constexpr int kSecondLookReps = 20;
std::vector<int> round_sizes(int reps, int max_reps);

// Writes an SVG plot of each input's latency grouped by target exit (atomically).
void write_latency_plot(const FingerprintSet& set, const CheckResult& result, const std::string& title,
                        const std::string& path);

}  // namespace fp
