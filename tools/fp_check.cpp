// fp_check: verify a suspect model against a fingerprint set, by response time alone (a timing
// set), or by its answers (a label set from fp_gen --kind, the prediction-based baselines).
// Exit status: 0 match, 1 no-match, 3 inconclusive (noise or too little evidence: measure again,
// with more --max-reps or on a quieter machine), 2 error (bad arguments, unreadable files, a suspect
// that does not answer).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "cli_common.h"
#include "remote_suspect.h"
#include "engine/error.h"
#include "fingerprint/verify.h"

using namespace engine;

namespace {

constexpr int kExitMatch = 0, kExitNoMatch = 1, kExitError = 2, kExitInconclusive = 3;

void print_report(const fp::FingerprintSet& set, const fp::CheckResult& r, const std::string& suspect) {
    std::printf("suspect      %s\n", suspect.c_str());
    std::printf("fingerprint  %d inputs, %d exits, crafted on %s\n", set.size(), set.num_exits(),
                set.model_name.c_str());
    std::printf("oracle       %s; transport overhead %.3f ms; %d repetitions per input", r.oracle.c_str(),
                r.overhead_ms, r.reps);
    if (r.oracle == "time") std::printf(" read at their %.2f quantile", r.quantile);
    if (r.copies > 1) std::printf(", %d copies per request", r.copies);
    std::printf("; %d queries (%lld images); %.1f s\n", r.queries, (long long)r.images, r.wall_s);
    if (r.oracle == "label") {  // no exits, levels or ranks: answers only
        std::printf("match rate   %.3f (%d/%d answers are the expected label), null %.3f [%s], pirate level %.3f\n",
                    r.match_rate, r.matches, set.size(), r.null_match_rate, set.null_source.c_str(),
                    r.pirate_match_rate);
        std::printf("p-value      %.3g (match test); %.3g (no-match test)\n", r.p_value, r.p_value_pirate);
        std::printf("verdict      %s: %s\n", fp::verdict_name(r.verdict), r.reason.c_str());
        return;
    }
    if (r.oracle == "time")
        std::printf("resolution   smallest exit step %.4f ms, resolvable %.4f ms: %s\n", r.smallest_step_ms,
                    r.resolvable_step_ms, r.separable ? "resolved" : "NOT resolved (noise hides the exit steps)");
    if (!r.level_ms.empty()) {
        std::printf("levels (ms)  ");
        for (size_t l = 0; l < r.level_ms.size(); ++l) std::printf("%.3f->exit%d  ", r.level_ms[l], r.level_exit[l]);
        std::printf(r.on_profile ? "(the owner's profile at the suspect's speed; the noise hides the gaps)\n"
                                 : "(grouped at gaps)\n");
    }
    std::printf("match rate   %.3f (%d/%d, %d undetermined, %d in levels that may be merged), null %.3f [%s], "
                "pirate level %.3f\n",
                r.match_rate, r.matches, set.size(), r.undetermined, r.merged, r.null_match_rate,
                set.null_source.c_str(), r.pirate_match_rate);
    std::printf("p-value      %.3g (match test); %.3g (no-match test); %d looks\n", r.p_value, r.p_value_pirate,
                r.looks);
    std::printf("rank corr.   %.3f (permutation p %.3g)\n", r.rank_correlation, r.rank_p_value);
    std::printf("confusion    rows: target exit, columns: observed exit\n");
    for (size_t t = 0; t < r.confusion.size(); ++t) {
        std::printf("  %2zu |", t);
        for (int c : r.confusion[t]) std::printf(" %3d", c);
        std::printf("\n");
    }
    if (r.oracle_agreement_all >= 0) {
        std::printf("time vs exit oracle agreement %.3f; per exit:", r.oracle_agreement_all);
        for (double a : r.oracle_agreement) a < 0 ? std::printf("   -  ") : std::printf(" %.3f", a);
        std::printf("\n");
    }
    std::printf("verdict      %s: %s\n", fp::verdict_name(r.verdict), r.reason.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    return cli::guarded_main(
        "fp_check",
        [&]() -> int {
            CLI::App app{"fp_check: verify a suspect model by timing its answers to a fingerprint set"};
            std::string fingerprint, suspect_path, suspect_url, oracle = "time", plot, threshold, backend = "native";
            int threads = 1;
            fp::CheckOptions o;
            bool as_json = false;
            app.add_option("fingerprint", fingerprint, "fingerprint file from fp_gen")->required();
            auto* local = app.add_option("--suspect", suspect_path, "suspect model file, run in this process");
            auto* remote = app.add_option("--suspect-url", suspect_url,
                                          "suspect served by engine_run serve (http://127.0.0.1:PORT)");
            local->excludes(remote);
            auto* oracle_option =
                app.add_option("--oracle", oracle,
                               "time (default for a timing fingerprint), exit (white-box reference) or label (the "
                               "suspect's answers; default for a label fingerprint)")
                    ->check(CLI::IsMember({"time", "exit", "label"}));
            app.add_option("--reps", o.reps,
                           "repetitions per input in the first round and each after the second (default 15; the second "
                           "tops up to 20)")
                ->check(CLI::Range(1, 1000));
            app.add_option("--max-reps", o.max_reps,
                           "time oracle: further rounds while the noise hides the step between exits, up to this "
                           "many repetitions per input (default 120; --reps or less: one round)")
                ->check(CLI::Range(1, 100000));
            std::string copies_help =
                "time oracle: copies of an input per request, which stretch the steps between exits against network "
                "jitter (default 0: one, or as many as the first round's noise asks, at most ";
            copies_help.append(std::to_string(fp::kMaxCopies)).append(")");
            app.add_option("--copies", o.copies, copies_help)->check(CLI::Range(0, fp::kMaxCopies));
            app.add_option("--alpha", o.alpha, "bound on the false-accusation rate: P(match | independent model)")
                ->check(CLI::Range(1e-12, 0.5));
            app.add_option("--beta", o.beta, "bound on P(no-match | copy keeping the pirate-level match rate)")
                ->check(CLI::Range(1e-12, 0.5));
            std::ostringstream candidates;
            for (double q : fp::kCandidateQuantiles) candidates << ' ' << q;
            app.add_option("--quantile", o.quantile,
                           "time oracle: an input's latency is this quantile of its repetitions (0.5: median; default: "
                           "whichever of" +
                               candidates.str() + " leaves the least noise)")
                ->check(CLI::Range(0.0, 0.99));
            app.add_option("--seed", o.seed);
            app.add_option("--suspect-threshold", threshold, "run a local suspect under another exit policy");
            app.add_option("--backend", backend, "backend of a local suspect: " + cli::backend_choices());
            cli::add_kernels_option(app);
            app.add_option("--threads", threads, "compute threads of a local suspect (default 1: the steadiest timing)")
                ->check(CLI::Range(1, 256));
            app.add_option("--plot", plot, "write an SVG of latency by target exit");
            app.add_flag("--json", as_json, "print one JSON object");
            try {
                app.parse(argc, argv);
                if (suspect_path.empty() && suspect_url.empty()) throw CLI::RequiredError("--suspect or --suspect-url");
            } catch (const CLI::ParseError& e) {
                const int status = app.exit(e);
                return status == 0 ? 0 : kExitError;  // --help: 0
            }
            fp::FingerprintSet set = fp::load_fingerprint(fingerprint);
            if (set.is_label() && oracle_option->count() == 0) oracle = "label";
            check(set.is_label() == (oracle == "label"),
                  fingerprint + ": a " + set.kind + " fingerprint" +
                      (set.is_label() ? " (" + set.info["label_kind"] + ")" : "") +
                      " cannot be checked with --oracle " + oracle + "; use --oracle " +
                      (set.is_label() ? "label" : "time or exit"));
            check(plot.empty() || !set.is_label(), "--plot: draws latencies, which a label fingerprint does not use");
            o.time_oracle = oracle == "time";
            // Files from before the null's provenance was recorded have no such entry.
            const auto same_arch = set.info.find("null_same_arch_references");
            const bool null_calibrated = same_arch != set.info.end() && same_arch->second != "0";
            if (!null_calibrated)
                std::fprintf(
                    stderr,
                    "warning: %s: its null match rate %.3f was not measured on independent models of %s's own "
                    "architecture (%s); a match may be a false accusation and a no-match a missed copy. Re-craft "
                    "with fp_gen --reference INDEPENDENT_SAME_ARCH_MODEL.\n",
                    fingerprint.c_str(), set.null_match_rate, set.model_name.c_str(), set.null_source.c_str());
            std::vector<float> q;
            if (!threshold.empty()) q = cli::parse_thresholds(threshold, set.num_exits());
            auto suspect = suspect_url.empty() ? fp::make_local_suspect(suspect_path, q, backend, threads)
                                               : fp::make_remote_suspect(suspect_url);
            fp::CheckResult r =
                set.is_label() ? fp::check_labels(set, *suspect, o) : fp::check_suspect(set, *suspect, o);
            if (!plot.empty())
                fp::write_latency_plot(
                    set, r,
                    "fingerprint " + set.model_name + " vs " + suspect->describe() + ": " + fp::verdict_name(r.verdict),
                    plot);
            if (as_json) {
                nlohmann::json j{{"verdict", fp::verdict_name(r.verdict)},
                                 {"reason", r.reason},
                                 {"match_rate", r.match_rate},
                                 {"p_value", r.p_value},
                                 {"p_value_pirate", r.p_value_pirate},
                                 {"matches", r.matches},
                                 {"undetermined", r.undetermined},
                                 {"merged", r.merged},
                                 {"inputs", set.size()},
                                 {"null_match_rate", r.null_match_rate},
                                 {"pirate_match_rate", r.pirate_match_rate},
                                 {"null_source", set.null_source},
                                 {"null_calibrated", null_calibrated},
                                 {"alpha", o.alpha},
                                 {"beta", o.beta},
                                 {"looks", r.looks},
                                 {"queries", r.queries},
                                 {"copies", r.copies},
                                 {"images", r.images},
                                 {"separable", r.separable},
                                 {"smallest_step_ms", r.smallest_step_ms},
                                 {"resolvable_step_ms", r.resolvable_step_ms},
                                 {"rank_correlation", r.rank_correlation},
                                 {"rank_p_value", r.rank_p_value},
                                 {"oracle", r.oracle},
                                 {"confusion", r.confusion},
                                 {"level_ms", r.level_ms},
                                 {"level_exit", r.level_exit},
                                 {"overhead_ms", r.overhead_ms},
                                 {"quantile", r.quantile},
                                 {"levels_from", r.on_profile ? "profile" : "gaps"},
                                 {"target_exit", set.target_exits},
                                 {"observed_exit", r.observed_exit},
                                 {"latency_ms", r.latency_ms},
                                 {"latency_noise_ms", r.jitter_ms},
                                 {"reps", r.reps},
                                 {"suspect", suspect->describe()},
                                 {"wall_s", r.wall_s}};
                if (r.oracle_agreement_all >= 0) {
                    j["oracle_agreement"] = r.oracle_agreement_all;
                    j["oracle_agreement_per_exit"] = r.oracle_agreement;
                }
                std::printf("%s\n", j.dump().c_str());
            } else {
                print_report(set, r, suspect->describe());
            }
            switch (r.verdict) {
                case fp::Verdict::match:
                    return kExitMatch;
                case fp::Verdict::no_match:
                    return kExitNoMatch;
                case fp::Verdict::inconclusive:
                    return kExitInconclusive;
            }
            return kExitInconclusive;
        },
        kExitError);
}
