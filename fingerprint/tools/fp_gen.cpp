// fp_gen: craft a timing fingerprint set for a multi-exit model.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>

#include "cli_common.h"
#include "engine/error.h"
#include "fingerprint/craft.h"

using namespace engine;

int main(int argc, char** argv) {
    return cli::guarded_main("fp_gen", [&]() -> int {
        CLI::App app{"fp_gen: craft inputs that leave a model at chosen exits, robust to a pirate's changes"};
        std::string model_path, out, exits_text, threshold;
        fp::CraftOptions o;
        app.add_option("model", model_path, "native model or .onnx")->required();
        app.add_option("--out", out, "fingerprint file to write")->required();
        app.add_option("--per-exit", o.per_exit, "inputs per target exit")->check(CLI::Range(1, 10000));
        app.add_option("--exits", exits_text, "target exits, e.g. 0,2,4 (default: all)");
        app.add_option("--data", o.data_dir, "start from this data set's test images (default: noise)");
        app.add_option("--margin", o.margin, "probability margin around each threshold")->check(CLI::Range(0.0, 0.5));
        app.add_option("--eps", o.eps, "L-infinity radius around the start image (default: unconstrained)");
        app.add_option("--steps", o.steps, "optimisation steps")->check(CLI::Range(0, 100000));
        app.add_option("--lr", o.lr, "Adam step size on pixels")->check(CLI::PositiveNumber);
        app.add_option("--seed", o.seed);
        app.add_option("--threshold", threshold, "exit policy to craft for (default: the model's)");
        app.add_option("--noise-variants", o.noise_variants, "ensemble copies with weight noise")->check(CLI::Range(0, 16));
        app.add_option("--weight-noise", o.weight_noise, "relative weight noise of those copies");
        app.add_option("--prune-variants", o.prune_variants, "pruned ensemble copies, by fraction")->delimiter(',');
        app.add_option("--variant", o.variant_paths, "fine-tuned copy to include in the ensemble (repeatable)");
        app.add_option("--reference", o.reference_paths, "independent model: estimates the null, avoids transfer (repeatable)");
        app.add_option("--oversample", o.oversample, "candidates crafted per kept input")->check(CLI::Range(1.0, 10.0));
        app.add_option("--batch", o.batch)->check(CLI::Range(1, 1024));
        app.add_option("--backend", o.backend, "ref | native | onednn | cuda");
        app.add_option("--threads", o.threads, "threads (0: one per core)")->check(CLI::Range(0, 256));
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            return app.exit(e);
        }
        if (!exits_text.empty()) {
            std::stringstream ss(exits_text);
            std::string item;
            while (std::getline(ss, item, ',')) {
                char* end = nullptr;
                long v = std::strtol(item.c_str(), &end, 10);
                check(end && *end == '\0' && !item.empty(), "--exits '" + exits_text + "': '" + item + "' is not an exit index");
                o.exits.push_back(int(v));
            }
        }
        Model model = load_model(model_path);
        if (!threshold.empty()) model.thresholds = cli::parse_thresholds(threshold, model.num_exits());
        const double start = cli::now_seconds();
        fp::FingerprintSet set = fp::craft_fingerprint(model, model_path, o);
        set.info["craft_seconds"] = std::to_string(cli::now_seconds() - start);
        fp::save_fingerprint(set, out);
        std::printf("wrote %s: %d inputs over %d exits for %s (sha256 %.12s...)\n", out.c_str(), set.size(),
                    set.num_exits(), set.model_name.c_str(), set.model_hash.c_str());
        std::printf("ensemble agreement %s; null match rate %.3f from %s\n", set.info["ensemble_agreement"].c_str(),
                    set.null_match_rate, set.null_source.c_str());
        std::printf("owner latency per exit (ms):");
        for (double v : set.owner_latency_ms) std::printf(" %.3f", v);
        std::printf("\n");
        return 0;
    });
}
