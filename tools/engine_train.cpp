// engine_train: train a multi-exit model on the engine, from scratch (--arch) or from a model file
// (--from, native or ONNX), with SDN joint loss, IC-only training, pruning, distillation and
// adversarial training, and the multi-exit model-stealing attack (--teacher VICTIM --mimic-exits);
// checkpoints every epoch and resumes exactly (--resume).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "cli_common.h"
#include "engine/error.h"
#include "engine/exit_calibration.h"
#include "engine/hash.h"
#include "engine/train/trainer.h"
#include "engine/model_zoo.h"

using namespace engine;
using nlohmann::json;

namespace {

// "0.031" or "8/255".
float parse_fraction(const std::string& text, const char* option) {
    auto number = [&](const std::string& s) {
        char* end = nullptr;
        float v = std::strtof(s.c_str(), &end);
        check(!s.empty() && end && *end == '\0', std::string(option) + " '" + text + "': not a number");
        return v;
    };
    const auto slash = text.find('/');
    float v =
        slash == std::string::npos ? number(text) : number(text.substr(0, slash)) / number(text.substr(slash + 1));
    check(std::isfinite(v) && v >= 0, std::string(option) + " '" + text + "': must be a non-negative number");
    return v;
}

// The command line, quoted so that it can be pasted back into a shell.
std::string command_line(int argc, char** argv) {
    std::string out;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        const bool plain =
            !a.empty() &&
            a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+%@") ==
                std::string::npos;
        if (!plain) {
            std::string q = "'";
            for (char ch : a) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
            a = q + "'";
        }
        out += (i ? " " : "") + a;
    }
    return out;
}

// A float as the shortest decimal that reads back to it (0.1f -> 0.1), for readable metadata.
double dec(float v) { return std::strtod(fmt::format("{}", v).c_str(), nullptr); }

std::string fmt_acc(const std::vector<double>& acc) {
    std::string s;
    for (size_t k = 0; k < acc.size(); ++k) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%s%.1f", k ? " " : "", 100 * acc[k]);
        s += buf;
    }
    return s;
}

// "66.5 70.1 %" or "-" where nothing was measured.
std::string percent_or_dash(const std::vector<double>& acc) { return acc.empty() ? "-" : fmt_acc(acc) + " %"; }

}  // namespace

int main(int argc, char** argv) {
    return cli::guarded_main("engine_train", [&]() -> int {
        CLI::App app{"engine_train: train or fine-tune a multi-exit CNN on the engine"};
        std::string arch, data, out, from, mode = "plain", optimizer = "sgd", schedule = "onecycle", train_only, reinit,
                                           teacher_path, log_path, checkpoint_path, backend = default_backend_name(),
                                           threshold, adv_eps = "8/255", adv_step = "2/255", test_data, match_exits;
        std::optional<float> lr;
        int epochs = 0, quantize_bits = 0, stop_after = -1, batch = 128, threads = 0, limit = -1, val_limit = 1000,
            adv_steps = 7;
        uint64_t seed = 0;
        float wd = 5e-4f, momentum = 0.9f, prune = 0, kd_temp = 4.0f, kd_alpha = 0.5f, mimic_margin = 0.1f,
              trades_beta = 6.0f;
        bool mimic_exits = false, trades = false, resume = false, adversarial = false, no_augment = false,
             no_nesterov = false, renormalize = false;

        app.add_option(
            "--arch", arch, "architecture to build: " + [] {
                std::string s;
                for (auto& n : model_names()) s += (s.empty() ? "" : ", ") + n;
                return s;
            }());
        app.add_option("--from", from, "start from this model (native or .onnx) instead of --arch");
        app.add_option("--data", data, "CIFAR-10/100, IDX (Fashion-MNIST) or Tiny-ImageNet-200 folder")->required();
        app.add_option("--epochs", epochs, "epochs to train (0: apply --prune / --reinit and write, no training)")
            ->required()
            ->check(CLI::Range(0, 100000));
        app.add_option("--out", out, "output model file (written atomically)")->required();
        app.add_option("--mode", mode, "plain (final exit) | sdn (joint loss) | ic-only (frozen backbone)")
            ->check(CLI::IsMember({"plain", "sdn", "ic-only"}));
        app.add_option("--lr", lr, "peak / initial learning rate (default 0.1 for sgd, 0.001 for adam)");
        app.add_option("--batch", batch, "batch size")->check(CLI::Range(1, 4096));
        app.add_option("--seed", seed, "seed of initialisation, data order, augmentation");
        app.add_option("--optimizer", optimizer, "sgd (Nesterov momentum) | adam")
            ->check(CLI::IsMember({"sgd", "adam"}));
        app.add_option("--momentum", momentum, "SGD momentum")->check(CLI::Range(0.0, 0.999));
        app.add_flag("--no-nesterov", no_nesterov, "plain momentum instead of Nesterov");
        app.add_option("--schedule", schedule, "onecycle | cosine | multistep | constant (per step)")
            ->check(CLI::IsMember({"onecycle", "cosine", "multistep", "constant"}));
        app.add_option("--wd", wd, "weight decay (L2 on the gradient)")->check(CLI::Range(0.0, 1.0));
        app.add_option("--train-only", train_only, "train only parameters whose name matches this regex");
        app.add_option("--reinit", reinit, "re-initialise parameters whose name matches this regex first");
        app.add_flag("--renormalize", renormalize,
                     "train a BN-folded model (Conv with bias, no BatchNorm) with a BatchNorm after each such Conv, "
                     "folded back into it in the output; use plain SGD (--momentum 0); --prune and --reinit "
                     "then act on the rescaled weights");
        app.add_option("--prune", prune, "prune this fraction of Conv/Gemm weights by global magnitude, mask fixed")
            ->check(CLI::Range(0.0, 0.999));
        app.add_option("--quantize", quantize_bits,
                       "round the output's Conv/Gemm weights to this many bits (8: int8, per output channel), "
                       "after any training")
            ->check(CLI::Range(2, 16));
        app.add_option("--teacher", teacher_path, "distil from this model's final exit");
        app.add_option("--kd-temp", kd_temp, "distillation temperature")->check(CLI::Range(0.01, 100.0));
        app.add_option("--kd-alpha", kd_alpha, "weight of the distillation term")->check(CLI::Range(0.0, 1.0));
        app.add_flag("--mimic-exits", mimic_exits,
                     "steal --teacher (Pan et al.): learn its answers and the exit each left at, no labels; the "
                     "output adopts the teacher's exit policy");
        app.add_option("--mimic-margin", mimic_margin, "--mimic-exits: earlier exits held this far below threshold")
            ->check(CLI::Range(0.0, 0.5));
        app.add_flag("--adv", adversarial, "PGD adversarial training (L-inf, eps 8/255, step 2/255, 7 steps)");
        app.add_flag(
            "--trades", trades,
            "TRADES adversarial training (KL attack, clean CE + beta KL); --adv-eps/step/steps set its attack");
        app.add_option("--trades-beta", trades_beta, "TRADES: weight of the divergence term")
            ->check(CLI::Range(0.0, 100.0));
        auto* o_eps =
            app.add_option("--adv-eps", adv_eps, "attack radius, e.g. 8/255 (implies --adv without --trades)");
        auto* o_step =
            app.add_option("--adv-step", adv_step, "attack step, e.g. 2/255 (implies --adv without --trades)");
        auto* o_steps = app.add_option("--adv-steps", adv_steps, "attack iterations (implies --adv without --trades)")
                            ->check(CLI::Range(1, 1000));
        app.add_option("--stop-after", stop_after, "stop after this many epochs of this run (resume later)")
            ->check(CLI::Range(1, 100000));
        app.add_flag("--resume", resume, "continue from the checkpoint <out>.ckpt (same settings)");
        app.add_option("--threads", threads, "compute threads (default: all)")->check(CLI::Range(1, 1024));
        app.add_option("--limit", limit, "train on the first N training images only")->check(CLI::PositiveNumber);
        app.add_option("--val-limit", val_limit, "test images evaluated after each epoch (0: none, -1: all)")
            ->check(CLI::Range(-1, 1 << 30));
        app.add_option("--test-data", test_data,
                       "where the test images come from (default: --data's test split; a single-file --data has "
                       "none, so without this option no test accuracy is measured)");
        app.add_option("--log", log_path, "JSON-lines log, one line per epoch (default <out>.log.jsonl)");
        app.add_option("--checkpoint", checkpoint_path, "checkpoint file (default <out>.ckpt)");
        app.add_option("--backend", backend, cli::backend_choices() + " (onednn trains MobileNet fastest on CPU)");
        cli::add_kernels_option(app);
        app.add_option("--threshold,--thresholds", threshold,
                       "exit policy stored in the output: q, or q0,q1,... (default: --from's, else 0.9)");
        app.add_option("--match-exits", match_exits,
                       "after training, set the output's thresholds so that on --data it leaves at each exit as "
                       "often as this model does under its own policy (a pirate getting back the victim's speed)")
            ->check(CLI::ExistingFile);
        app.add_flag("--no-augment", no_augment, "no random crop and flip");
        CLI11_PARSE(app, argc, argv);
        check(arch.empty() != from.empty(), "give either --arch NAME (train from scratch) or --from MODEL (fine-tune)");
        check(teacher_path.empty() || std::filesystem::exists(teacher_path), teacher_path + ": no such file");
        check(!mimic_exits || !teacher_path.empty(), "--mimic-exits: give the victim model as --teacher");
        check(from.empty() || std::filesystem::exists(from), from + ": no such file");
        check(!(trades && adversarial), "give --adv (PGD training) or --trades, not both");
        adversarial = !trades && (adversarial || o_eps->count() || o_step->count() || o_steps->count());
        if (log_path.empty()) log_path = out + ".log.jsonl";
        if (checkpoint_path.empty()) checkpoint_path = out + ".ckpt";
        check(!resume || std::filesystem::exists(checkpoint_path),
              checkpoint_path + ": no checkpoint to resume from (--resume)");

        Dataset train = load_dataset_dir(data, true, limit);
        std::optional<Dataset> test;
        if (test_data.empty() && std::filesystem::is_regular_file(data) && val_limit != 0) {
            // A single batch file would be its own test set: its accuracy is no test accuracy.
            std::printf("note: %s is one file with no test split; give --test-data DIR to measure test accuracy\n",
                        data.c_str());
            val_limit = 0;
        }
        if (val_limit != 0) test = load_dataset_dir(test_data.empty() ? data : test_data, false, val_limit);
        const Shape& s = train.images.shape();
        Model model;
        if (from.empty()) {
            check(s[2] == s[3], data + ": images are not square (" + s.str() + ")");
            model = build_model(arch, train.num_classes, int(s[2]), seed, int(s[1]));
        } else {
            model = load_model(from);
        }
        std::optional<Model> teacher;
        if (!teacher_path.empty()) teacher = load_model(teacher_path);
        const auto thresholds = !threshold.empty() ? cli::parse_thresholds(threshold, model.num_exits())
                                : mimic_exits      ? teacher->thresholds
                                : !from.empty()    ? model.thresholds
                                                   : cli::parse_thresholds("0.9", model.num_exits());

        train::TrainConfig c;
        c.mode = mode;
        c.epochs = epochs;
        c.batch = batch;
        c.seed = seed;
        c.optimizer.kind = optimizer;
        c.optimizer.momentum = momentum;
        c.optimizer.nesterov = optimizer == "sgd" && !no_nesterov && momentum > 0;
        c.optimizer.weight_decay = wd;
        c.schedule.kind = schedule;
        c.schedule.lr = lr ? *lr : (optimizer == "adam" ? 1e-3f : 0.1f);
        c.augment.enabled = !no_augment;
        c.train_only = train_only;
        c.reinit = reinit;
        c.prune = prune;
        c.renormalize = renormalize;
        c.adversarial = adversarial;
        c.trades = trades;
        c.trades_beta = trades_beta;
        c.pgd.eps = parse_fraction(adv_eps, "--adv-eps");
        c.pgd.step = parse_fraction(adv_step, "--adv-step");
        c.pgd.steps = adv_steps;
        c.kd_temperature = kd_temp;
        c.kd_alpha = kd_alpha;
        c.mimic_exits = mimic_exits;
        c.mimic_margin = mimic_margin;
        c.backend = backend;
        c.threads = threads;
        c.val_limit = val_limit;
        c.log_path = log_path;
        c.checkpoint_path = checkpoint_path;

        std::vector<double> acc;
        double seconds = 0;
        int64_t params = 0;
        {
            train::Trainer trainer(model, train, test ? &*test : nullptr, c, teacher ? &*teacher : nullptr);
            for (int i : trainer.parameters()) params += model.graph.nodes[i].value.numel();
            if (resume) {
                trainer.load_checkpoint(checkpoint_path);
                std::printf("resuming %s after epoch %d of %d\n", checkpoint_path.c_str(), trainer.epochs_done(),
                            epochs);
            } else {
                std::ofstream(log_path, std::ios::trunc);  // a fresh run starts a fresh log
            }
            if (renormalize)
                std::printf("inserted %zu BatchNorms (--renormalize); they are folded back into the output\n",
                            trainer.inserted_batchnorms().size());
            std::printf("training %lld parameters on %lld images, %lld steps per epoch, mode %s, backend %s\n",
                        (long long)params, (long long)train.size(), (long long)trainer.steps_per_epoch(), mode.c_str(),
                        backend.c_str());
            std::fflush(stdout);
            if (trainer.prune_mask().pruned > 0)
                std::printf("pruned %lld of %lld Conv/Gemm weights\n", (long long)trainer.prune_mask().pruned,
                            (long long)trainer.prune_mask().total);
            std::unique_ptr<cli::Progress> bar;
            int epoch_shown = -1;
            trainer.fit(
                stop_after,
                [&](int64_t done, int64_t total, double loss) {
                    if (epoch_shown != trainer.epochs_done()) {
                        epoch_shown = trainer.epochs_done();
                        bar = std::make_unique<cli::Progress>(
                            "epoch " + std::to_string(epoch_shown + 1) + "/" + std::to_string(epochs), total);
                    }
                    char extra[32];
                    std::snprintf(extra, sizeof extra, "loss %.3f", loss);
                    if (done < total)
                        bar->update(done, extra);
                    else
                        bar->finish(extra);
                },
                [&](const train::EpochStats& e) {
                    std::printf(
                        "epoch %d/%d  lr %.4g  loss %.4f  train acc %.1f %%  test acc per exit %s  %.1f s  %.0f "
                        "img/s\n",
                        e.epoch, epochs, e.lr, e.train_loss, 100 * e.train_acc, percent_or_dash(e.test_acc).c_str(),
                        e.seconds, e.images_per_s);
                    std::fflush(stdout);
                });
            if (!trainer.finished()) {
                std::printf("stopped after epoch %d of %d; checkpoint %s (continue with --resume)\n",
                            trainer.epochs_done(), epochs, checkpoint_path.c_str());
                return 0;
            }
            if (!trainer.history().empty()) acc = trainer.history().back().test_acc;
            seconds = trainer.train_seconds();
        }  // the trainer restores the frozen parameters' trainable flags and folds inserted BatchNorms here

        if (quantize_bits > 0) {
            const int64_t n = train::quantize_weights(model.graph, quantize_bits);
            std::printf("quantised %lld weights to %d bits\n", (long long)n, quantize_bits);
            acc.clear();  // measured before rounding: no longer the output's (engine_run eval measures it)
        }
        model.thresholds = thresholds;
        if (!match_exits.empty()) {
            const Model victim = load_model(match_exits);
            check(victim.num_exits() == model.num_exits(), match_exits + ": has " + std::to_string(victim.num_exits()) +
                                                               " exits, the model " +
                                                               std::to_string(model.num_exits()));
            auto be = make_backend(backend, threads);
            model.thresholds = thresholds_for_exit_shares(model, *be, train, exit_shares(victim, *be, train));
            std::printf("thresholds matched to %s's exits on %lld images:", match_exits.c_str(),
                        (long long)train.size());
            for (float q : model.thresholds) std::printf(" %.4f", q);
            std::printf("\n");
        }
        if (from.empty()) model.metadata["arch"] = arch;
        model.metadata["seed"] = std::to_string(seed);
        model.metadata["command"] = command_line(argc, argv);
        model.metadata["train_seconds"] = json(seconds).dump();
        if (!acc.empty()) {
            model.metadata["per_exit_acc"] = json(acc).dump();
            model.metadata["per_exit_acc_images"] = std::to_string(test->size());
        }
        json summary{{"mode", mode},           {"epochs", epochs},     {"batch", batch}, {"lr", dec(c.schedule.lr)},
                     {"optimizer", optimizer}, {"schedule", schedule}, {"wd", dec(wd)},  {"train_images", train.size()},
                     {"augment", !no_augment}, {"backend", backend}};
        if (!from.empty()) summary["from"] = from;
        if (!train_only.empty()) summary["train_only"] = train_only;
        if (!reinit.empty()) summary["reinit"] = reinit;
        if (prune > 0) summary["prune"] = prune;
        if (quantize_bits > 0) summary["quantize_bits"] = quantize_bits;
        if (!match_exits.empty()) summary["exits_matched_to"] = match_exits;
        if (renormalize) summary["renormalize"] = true;
        if (adversarial || trades)
            summary["adversarial"] = {{"eps", dec(c.pgd.eps)}, {"step", dec(c.pgd.step)}, {"steps", c.pgd.steps}};
        if (trades) summary["adversarial"]["trades_beta"] = dec(trades_beta);
        if (teacher && mimic_exits)
            summary["stolen_from"] = {{"path", teacher_path}, {"mimic_margin", dec(mimic_margin)}};
        else if (teacher)
            summary["teacher"] = {{"path", teacher_path}, {"temperature", dec(kd_temp)}, {"alpha", dec(kd_alpha)}};
        model.metadata["train"] = summary.dump();
        save_model(model, out);
        std::printf("wrote %s (%d exits, test accuracy per exit %s, sha256 %s)\n", out.c_str(), model.num_exits(),
                    percent_or_dash(acc).c_str(), model_hash(model).c_str());
        return 0;
    });
}
