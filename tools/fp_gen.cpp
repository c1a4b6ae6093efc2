// fp_gen: craft a timing fingerprint set for a multi-exit model, or with --kind one of the
// prediction-based baselines it is compared with (fingerprint/craft_label.h).
//
// Safe defaults (issue 15): the owner's own fine-tuned, adversarially fine-tuned and head-retrained
// copies join the ensemble (trained here on a few training images of --data, else
// ../shared/data/cifar10, and kept next to --out for the next run, unless --variant gives some or
// --own-copy-images is 0). The head-retrained copies, thresholds reset to the owner's exit shares,
// hold a pirate who retrains the exit heads on the stolen backbone and resets its thresholds to
// regain the speed: on resnet56_s1 (84 inputs) such a pirate kept 74 of 84 inputs at their exits
// without them and 81 with them; fine-tuned and pruned pirates kept more too (67 -> 69, 67 -> 76).
// At least one --reference must be an independent model of the owner's architecture (it calibrates
// the null) unless --allow-uncalibrated-null says otherwise; what is missing is named in one line, with
// how to get it. Crafting starts from uniform noise unless --from-data: inputs crafted from test
// images transfer to independent copies of the same architecture (held out, margin 0.1: resnet56_s3
// 0.536, weights/small_s2 0.775 of them at their target; from noise 0.071 and 0.350), leaving a
// null so high that no count of matches can accuse.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>

#include "cli_common.h"
#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/exit_calibration.h"
#include "engine/graph.h"
#include "engine/train/trainer.h"
#include "fingerprint/craft.h"
#include "fingerprint/craft_label.h"
#include "fingerprint/verify.h"

using namespace engine;

namespace {

// The shared CIFAR-10 beside the repository: ../shared/data/cifar10 from the working directory or
// from the repository that holds this binary (build/bin/fp_gen). Empty when neither exists.
std::string default_data_dir() {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates{"../shared/data/cifar10"};
    char exe[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        candidates.push_back(fs::path(std::string(exe, size_t(n))).parent_path() / "../../../shared/data/cifar10");
    for (const auto& c : candidates)
        if (fs::is_directory(c)) return fs::weakly_canonical(c).string();
    return "";
}

bool has_batchnorm(const Model& m) {
    for (const auto& n : m.graph.nodes)
        if (n.op == Op::BatchNorm) return true;
    return false;
}

// The owner's own copies of what a pirate does, trained on `train` (the first images of data_dir)
// and written atomically to `path` (a model without BatchNorm, folded as ONNX exports are, trains
// with them re-inserted and plain SGD: README):
//   fine-tuned   one epoch of the SDN loss, lr 0.01;
//   adversarial  the same under PGD-7 at 8/255;
//   heads        internal classifiers ('.ic.' parameters) re-initialised and retrained on the frozen
//                backbone, `epochs` epochs at lr 0.01, seed `seed`, then thresholds set so that it
//                leaves at each exit in owner_shares, the owner's shares on `train` (a pirate getting
//                back the victim's speed; engine_train --match-exits).
enum class CopyKind { fine_tuned, adversarial, heads };

void make_own_copy(const Model& owner, const std::string& model_path, const std::string& data_dir, const Dataset& train,
                   CopyKind kind, int epochs, uint64_t seed, const std::vector<double>& owner_shares,
                   const std::string& backend_name, int threads, const std::string& path) {
    Model copy = owner;
    train::TrainConfig c;
    c.mode = kind == CopyKind::heads ? "ic-only" : "sdn";
    c.reinit = kind == CopyKind::heads ? "\\.ic\\." : "";
    c.epochs = epochs;
    c.batch = 128;
    c.seed = seed;
    c.schedule.kind = kind == CopyKind::heads ? "cosine" : "constant";
    c.schedule.lr = 0.01f;
    c.renormalize = !has_batchnorm(copy);
    c.optimizer.momentum = c.renormalize ? 0.0f : c.optimizer.momentum;
    c.optimizer.nesterov = c.optimizer.nesterov && !c.renormalize;
    c.adversarial = kind == CopyKind::adversarial;
    c.backend = backend_name;
    c.threads = threads;
    c.val_limit = 0;
    const std::string label = kind == CopyKind::fine_tuned ? "own fine-tuned copy"
                              : kind == CopyKind::adversarial
                                  ? "own adversarial copy"
                                  : "own head-retrained copy (seed " + std::to_string(seed) + ")";
    {
        train::Trainer trainer(copy, train, nullptr, c);
        cli::Progress bar(label, train.size() * epochs);
        int64_t before = 0;
        trainer.fit(-1, [&](int64_t done, int64_t total, double loss) {
            char extra[32];
            std::snprintf(extra, sizeof extra, " loss %.3f", loss);
            bar.update(before + done, extra);
            if (done == total) before += total;
        });
        bar.finish();
    }
    if (kind == CopyKind::heads) {
        auto backend = make_backend(backend_name, threads);
        copy.thresholds = thresholds_for_exit_shares(copy, *backend, train, owner_shares);
    }
    copy.metadata["made_by"] = "fp_gen own copy: " + label + " of " + model_path + " on " +
                               std::to_string(train.size()) + " images of " + data_dir;
    save_model(copy, path);
}

// Re-trainable internal classifiers: parameters named '*.ic.*', as the SDN builders and exports name them.
bool has_named_heads(const Model& m) {
    for (const auto& n : m.graph.nodes)
        if (n.op == Op::Constant && n.trainable && n.name.find(".ic.") != std::string::npos) return true;
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::guarded_main("fp_gen", [&]() -> int {
        CLI::App app{"fp_gen: craft inputs that leave a model at chosen exits, robust to a pirate's changes"};
        std::string model_path, out, exits_text, threshold;
        fp::CraftOptions o;
        bool from_noise = false, from_data = false, allow_uncalibrated = false;
        int own_images = 2000, own_head_copies = 2;
        std::string kind = "timing";
        fp::LabelOptions lo;
        app.add_option("model", model_path, "native model or .onnx")->required();
        app.add_option("--kind", kind,
                       "timing (default: inputs that leave at chosen exits), or a prediction-based baseline checked "
                       "with fp_check --oracle label: misclassified (the model's misclassified test images), ipguard "
                       "(boundary points), cae (conferrable adversarial examples)")
            ->check(CLI::IsMember({"timing", "misclassified", "ipguard", "cae"}));
        app.add_option("--inputs", lo.inputs, "label kinds: fingerprint inputs (default 40)")
            ->check(CLI::Range(1, 100000));
        app.add_option("--gap", lo.gap, "ipguard: the answer's logit lead over the runner-up, at most (default 1)")
            ->check(CLI::PositiveNumber);
        app.add_option("--confidence", lo.confidence,
                       "cae: target probability at the final exit of the model and its copies (default 0.6)")
            ->check(CLI::Range(0.01, 0.99));
        app.add_option("--reference-cap", lo.reference_cap,
                       "cae: target probability kept below this on steering references (default 0.3)")
            ->check(CLI::Range(0.01, 0.99));
        app.add_option("--out", out, "fingerprint file to write")->required();
        app.add_option("--per-exit", o.per_exit, "inputs per target exit (default: 80 inputs over the target exits)")
            ->check(CLI::Range(1, 10000));
        app.add_option("--exits", exits_text, "target exits, e.g. 0,2,4 (default: all)");
        app.add_option("--data", o.data_dir,
                       "data set: trains the own copies, and gives the starting images with --from-data "
                       "(default: ../shared/data/cifar10 when present)");
        app.add_flag("--from-data", from_data, "start from the data set's test images instead of uniform noise");
        app.add_flag("--noise", from_noise, "start from uniform noise (the default)");
        app.add_option("--own-copy-images", own_images,
                       "train the owner's own fine-tuned and adversarially fine-tuned copies on this many training "
                       "images when no --variant is given (default 2000; 0: no own copies at all, head-retrained "
                       "ones included); kept as OUT.own_ft.model and OUT.own_adv.model and reused")
            ->check(CLI::Range(0, 1000000));
        app.add_option("--own-head-copies", own_head_copies,
                       "with the own copies: this many more whose internal classifiers ('.ic.' parameters) are "
                       "re-initialised and retrained on the frozen backbone (1, 3, ... epochs on 5x the images), "
                       "thresholds matched to the owner's exit shares; kept as OUT.own_heads<i>.model (default 2)")
            ->check(CLI::Range(0, 8));
        app.add_flag("--allow-uncalibrated-null", allow_uncalibrated,
                     "craft even when no --reference shares the model's architecture (the null is then a guess)");
        app.add_option("--margin", o.margin, "probability margin around each threshold")->check(CLI::Range(0.0, 0.5));
        app.add_option("--eps", o.eps, "L-infinity radius around the start image (default: unconstrained)");
        app.add_option("--steps", o.steps, "optimisation steps")->check(CLI::Range(0, 100000));
        app.add_option("--lr", o.lr, "Adam step size on pixels")->check(CLI::PositiveNumber);
        app.add_option("--seed", o.seed);
        app.add_option("--threshold", threshold, "exit policy to craft for (default: the model's)");
        app.add_option("--noise-variants", o.noise_variants, "ensemble copies with weight noise")
            ->check(CLI::Range(0, 16));
        app.add_option("--weight-noise", o.weight_noise, "relative weight noise of those copies");
        app.add_option("--prune-variants", o.prune_variants, "pruned ensemble copies, by fraction")->delimiter(',');
        app.add_option("--variant", o.variant_paths, "fine-tuned copy to include in the ensemble (repeatable)");
        app.add_option("--reference", o.reference_paths,
                       "independent model of the same architecture (another seed; never a suspect later): estimates "
                       "the null, avoids "
                       "transfer (repeatable)");
        app.add_option("--null-reference", o.null_reference_paths,
                       "independent model of the same architecture held out of selection to measure the null "
                       "(repeatable; default: the last same-architecture --reference); the null is a prediction "
                       "bound for one more seed from their rates; several seeds measure the spread between seeds")
            ->check(CLI::ExistingFile);
        std::ostringstream oversample_default;
        oversample_default << "candidates crafted per kept input (default " << fp::kBaseOversample << ", and "
                           << fp::kOversamplePerSteeringSeed
                           << " more for each same-architecture --reference that steers selection, at most "
                           << fp::kMaxOversample << ")";
        app.add_option("--oversample", o.oversample, oversample_default.str())->check(CLI::Range(1.0, 10.0));
        app.add_option("--batch", o.batch)->check(CLI::Range(1, 1024));
        app.add_option("--backend", o.backend, cli::backend_choices());
        cli::add_kernels_option(app);
        app.add_option("--threads", o.threads, "threads (0: one per core)")->check(CLI::Range(0, 256));
        CLI11_PARSE(app, argc, argv);
        if (!exits_text.empty()) {
            std::stringstream ss(exits_text);
            std::string item;
            while (std::getline(ss, item, ',')) {
                char* end = nullptr;
                long v = std::strtol(item.c_str(), &end, 10);
                check(end && *end == '\0' && !item.empty(),
                      "--exits '" + exits_text + "': '" + item + "' is not an exit index");
                o.exits.push_back(int(v));
            }
        }
        Model model = load_model(model_path);
        if (!threshold.empty()) model.thresholds = cli::parse_thresholds(threshold, model.num_exits());
        const std::string arch = model.metadata.count("arch") ? model.metadata.at("arch") : "the same architecture";

        // data: what the own copies train on and, with --from-data, where crafting starts.
        check(!(from_noise && from_data), "give --noise or --from-data, not both");
        std::string data = o.data_dir;
        if (data.empty()) data = default_data_dir();
        check(!data.empty() || !from_data,
              "--from-data: no data set: give --data DIR (the default "
              "../shared/data/cifar10 is not there)");
        const bool label = kind != "timing";
        check(kind != "misclassified" || !data.empty(),
              "--kind misclassified: no data set: give --data DIR (the default ../shared/data/cifar10 is not there)");
        o.data_dir = from_data || kind == "misclassified" ? data : "";
        if (from_data) std::fprintf(stderr, "fp_gen: starting from the test images of %s\n", data.c_str());

        int same_arch_refs = 0;
        for (const auto& r : o.reference_paths) same_arch_refs += fp::same_architecture(model, load_model(r));
        same_arch_refs += int(o.null_reference_paths.size());  // checked to share it when crafting
        check(same_arch_refs > 0 || allow_uncalibrated,
              std::string(o.reference_paths.empty() ? "no --reference given"
                                                    : "no --reference shares the model's architecture") +
                  ": the null would be a guess and independent copies of " + arch +
                  " could be accused. Train one "
                  "(engine_train --arch " +
                  (model.metadata.count("arch") ? arch : "ARCH") +
                  " --data DIR --seed 2 --out ref.model), pass --reference ref.model, or accept a guessed null with "
                  "--allow-uncalibrated-null");

        // The own copies serve the timing ensemble and CAE's; IPGuard and misclassified images use the owner alone.
        if (label && kind != "cae") own_images = 0;
        if (o.variant_paths.empty() && own_images > 0 && data.empty())
            std::fprintf(stderr,
                         "fp_gen: no data set, so no own fine-tuned copies in the ensemble (give --data DIR or "
                         "--variant): an adversarially fine-tuned pirate is then likely to escape\n");
        if (o.variant_paths.empty() && own_images > 0 && !data.empty()) {
            std::map<int, Dataset> loaded;     // training images by count: the head copies share theirs
            std::vector<double> owner_shares;  // the owner's exit shares on the head copies' images
            auto own_copy = [&](const std::string& path, int images, CopyKind kind, int epochs, uint64_t seed) {
                o.variant_paths.push_back(path);
                if (std::filesystem::exists(path)) {
                    std::fprintf(stderr, "fp_gen: reusing %s\n", path.c_str());
                    return;
                }
                auto it = loaded.find(images);
                if (it == loaded.end()) it = loaded.emplace(images, load_dataset_dir(data, true, images)).first;
                if (kind == CopyKind::heads && owner_shares.empty()) {
                    auto backend = make_backend(o.backend, o.threads);
                    owner_shares = exit_shares(model, *backend, it->second);
                }
                make_own_copy(model, model_path, data, it->second, kind, epochs, seed, owner_shares, o.backend,
                              o.threads, path);
            };
            own_copy(out + ".own_ft.model", own_images, CopyKind::fine_tuned, 1, 7);
            own_copy(out + ".own_adv.model", std::max(own_images / 2, 1), CopyKind::adversarial, 1, 8);
            if (own_head_copies > 0 && !has_named_heads(model))
                std::fprintf(stderr,
                             "fp_gen: %s has no '.ic.' parameters, so no own head-retrained copies: a pirate who "
                             "retrains the exit heads may escape\n",
                             model_path.c_str());
            else
                for (int i = 0; i < own_head_copies; ++i)
                    own_copy(out + ".own_heads" + std::to_string(i) + ".model", 5 * own_images, CopyKind::heads,
                             1 + 2 * i, 20 + i);
        }
        std::unique_ptr<cli::Progress> bar;
        o.progress = [&](int64_t done, int64_t total) {
            if (!bar) bar = std::make_unique<cli::Progress>("crafting", total, "step");
            if (done < total)
                bar->update(done);
            else
                bar->finish();
        };
        const double start = cli::now_seconds();
        fp::FingerprintSet set = label
                                     ? fp::craft_label_fingerprint(model, model_path, fp::parse_label_kind(kind), o, lo)
                                     : fp::craft_fingerprint(model, model_path, o);
        set.info["craft_seconds"] = std::to_string(cli::now_seconds() - start);
        fp::save_fingerprint(set, out);
        if (label)
            std::printf("wrote %s: %d %s inputs (label fingerprint) for %s (sha256 %.12s...)\n", out.c_str(),
                        set.size(), kind.c_str(), set.model_name.c_str(), set.model_hash.c_str());
        else
            std::printf("wrote %s: %d inputs over %d exits for %s (sha256 %.12s...)\n", out.c_str(), set.size(),
                        set.num_exits(), set.model_name.c_str(), set.model_hash.c_str());
        std::printf("ensemble agreement %s; null match rate %.3f from %s\n", set.info["ensemble_agreement"].c_str(),
                    set.null_match_rate, set.null_source.c_str());
        if (set.info["null_same_arch_references"] == "0")
            std::fprintf(
                stderr,
                "WARNING: no reference model of %s's own architecture was given, so the null match rate "
                "%.3f is %s.\n"
                "WARNING: independent models of the same architecture transfer fingerprints far more than other "
                "networks do; fp_check may then accuse them or miss pirates.\n"
                "WARNING: train one or more independent copies (engine_train with another --seed, same "
                "architecture and data) and pass each with --reference.\n",
                set.model_name.c_str(), set.null_match_rate,
                set.info["null_references"] == "[]" ? "an assumption" : "a guess from other architectures");
        // What fp_check can decide with this file at its default error rates and rounds.
        const fp::CheckOptions defaults;
        const int looks = label ? 1 : std::max(1, defaults.max_reps / defaults.reps), M = set.size();
        int need_match = -1, allow_nomatch = -1;
        for (int m = M; m >= 0; --m) {
            const fp::Decision d = fp::decide_for_set(set, m, 0, defaults.alpha, defaults.beta, looks, true);
            if (d.verdict == fp::Verdict::match) need_match = m;
            if (d.verdict == fp::Verdict::no_match && allow_nomatch < 0) allow_nomatch = m;
        }
        if (need_match < 0)
            std::fprintf(stderr,
                         "WARNING: with a null of %.3f not even %d of %d matches makes a match at fp_check's defaults: "
                         "this fingerprint cannot accuse anyone. Craft more inputs (--per-exit), from noise (no "
                         "--from-data), or give "
                         "a second same-architecture --reference to steer selection.\n",
                         set.null_match_rate, M, M);
        else
            std::printf("fp_check at its defaults: match from %d of %d matches, %s\n", need_match, M,
                        allow_nomatch < 0 ? "never no-match (the null is too high)"
                                          : ("no-match at " + std::to_string(allow_nomatch) + " or fewer").c_str());
        if (label) return 0;  // no latency measured
        std::printf("owner latency per exit (ms):");
        for (double v : set.owner_latency_ms) std::printf(" %.3f", v);
        std::printf("\n");
        return 0;
    });
}
