// fp_check: verify a suspect model against a fingerprint set, by response time alone.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli_common.h"
#include "remote_suspect.h"
#include "engine/error.h"
#include "fingerprint/verify.h"

using namespace engine;

namespace {

void print_report(const fp::FingerprintSet& set, const fp::CheckResult& r, const std::string& suspect) {
    std::printf("suspect      %s\n", suspect.c_str());
    std::printf("fingerprint  %d inputs, %d exits, crafted on %s\n", set.size(), set.num_exits(), set.model_name.c_str());
    std::printf("oracle       %s; transport overhead %.3f ms; %d repetitions per input; %.1f s\n", r.oracle.c_str(),
                r.overhead_ms, r.reps, r.wall_s);
    if (!r.level_ms.empty()) {
        std::printf("levels (ms)  ");
        for (size_t l = 0; l < r.level_ms.size(); ++l) std::printf("%.3f->exit%d  ", r.level_ms[l], r.level_exit[l]);
        std::printf("\n");
    }
    std::printf("match rate   %.3f (%d/%d), null %.3f [%s]\n", r.match_rate, r.matches, set.size(), r.null_match_rate,
                set.null_source.c_str());
    std::printf("p-value      %.3g\n", r.p_value);
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
    std::printf("verdict      %s\n", r.verdict.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    return cli::guarded_main("fp_check", [&]() -> int {
        CLI::App app{"fp_check: verify a suspect model by timing its answers to a fingerprint set"};
        std::string fingerprint, suspect_path, suspect_url, oracle = "time", plot, threshold, backend = "native";
        int threads = 1;
        fp::CheckOptions o;
        bool as_json = false;
        app.add_option("fingerprint", fingerprint, "fingerprint file from fp_gen")->required();
        auto* local = app.add_option("--suspect", suspect_path, "suspect model file, run in this process");
        auto* remote = app.add_option("--suspect-url", suspect_url, "suspect served by engine_run serve (http://127.0.0.1:PORT)");
        local->excludes(remote);
        app.add_option("--oracle", oracle, "time (default) or exit (white-box reference)")->check(CLI::IsMember({"time", "exit"}));
        app.add_option("--reps", o.reps, "repetitions per input per round")->check(CLI::Range(1, 1000));
        app.add_option("--max-reps", o.max_reps,
                       "time oracle: further rounds while the noise hides the step between exits, up to this "
                       "many repetitions per input (default 120; --reps or less: one round)")
            ->check(CLI::Range(1, 100000));
        app.add_option("--alpha", o.alpha, "significance level")->check(CLI::Range(1e-12, 0.5));
        app.add_option("--seed", o.seed);
        app.add_option("--suspect-threshold", threshold, "run a local suspect under another exit policy");
        app.add_option("--backend", backend, "backend of a local suspect");
        cli::add_kernels_option(app);
        app.add_option("--threads", threads, "compute threads of a local suspect (default 1: the steadiest timing)")
            ->check(CLI::Range(1, 256));
        app.add_option("--plot", plot, "write an SVG of latency by target exit");
        app.add_flag("--json", as_json, "print one JSON object");
        try {
            app.parse(argc, argv);
            if (suspect_path.empty() && suspect_url.empty()) throw CLI::RequiredError("--suspect or --suspect-url");
        } catch (const CLI::ParseError& e) {
            return app.exit(e);
        }
        o.time_oracle = oracle == "time";
        fp::FingerprintSet set = fp::load_fingerprint(fingerprint);
        std::vector<float> q;
        if (!threshold.empty()) q = cli::parse_thresholds(threshold, set.num_exits());
        auto suspect = suspect_url.empty() ? fp::make_local_suspect(suspect_path, q, backend, threads) : fp::make_remote_suspect(suspect_url);
        fp::CheckResult r = fp::check_suspect(set, *suspect, o);
        if (!plot.empty())
            fp::write_latency_plot(set, r, "fingerprint " + set.model_name + " vs " + suspect->describe() + ": " + r.verdict, plot);
        if (as_json) {
            nlohmann::json j{{"verdict", r.verdict}, {"match_rate", r.match_rate}, {"p_value", r.p_value},
                             {"matches", r.matches}, {"inputs", set.size()}, {"null_match_rate", r.null_match_rate},
                             {"rank_correlation", r.rank_correlation}, {"rank_p_value", r.rank_p_value},
                             {"oracle", r.oracle}, {"confusion", r.confusion}, {"level_ms", r.level_ms},
                             {"level_exit", r.level_exit}, {"overhead_ms", r.overhead_ms}, {"reps", r.reps},
                             {"suspect", suspect->describe()}, {"wall_s", r.wall_s}};
            if (r.oracle_agreement_all >= 0) {
                j["oracle_agreement"] = r.oracle_agreement_all;
                j["oracle_agreement_per_exit"] = r.oracle_agreement;
            }
            std::printf("%s\n", j.dump().c_str());
        } else {
            print_report(set, r, suspect->describe());
        }
        return 0;
    });
}
