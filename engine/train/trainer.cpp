#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/train/exit_mimicry.h"
#include "engine/train/loss.h"
#include "engine/train/renormalize.h"
#include "engine/train/trainer.h"

namespace engine::train {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

uint64_t step_seed(uint64_t seed, int64_t step) {
    uint64_t z = seed ^ (uint64_t(step) + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Per-sample input shape (C, H, W) of a one-input model; the batch dimension left out.
std::vector<int64_t> sample_dims(const Model& m, const char* what) {
    check(m.graph.inputs.size() == 1, std::string(what) + ": training needs a model with exactly one input");
    auto dims = m.graph.nodes[m.graph.inputs[0]].input_dims;
    check(!dims.empty() && (dims[0] == -1 || dims[0] == 1),
          std::string(what) + ": the model input must have a batch dimension first");
    return {dims.begin() + 1, dims.end()};
}

// Classes of every exit (the logits' width at batch 1).
std::vector<int> exit_classes(const Model& m) {
    auto shapes = m.graph.infer_shapes(1);
    std::vector<int> out;
    for (int o : m.graph.outputs) out.push_back(int(shapes[o].numel()));
    return out;
}

}  // namespace

Trainer::Trainer(Model& model, const Dataset& train, const Dataset* val, TrainConfig config, const Model* teacher)
    : model_(model), train_(train), val_(val), config_(std::move(config)), teacher_(teacher) {
    TrainConfig& c = config_;
    check(c.mode == "plain" || c.mode == "sdn" || c.mode == "ic-only",
          "--mode '" + c.mode + "': unknown (known: plain, sdn, ic-only)");
    check(c.epochs >= 0, "--epochs must not be negative");
    check(c.batch >= 1, "--batch must be at least 1");
    check(train.size() >= 1, "training data: no samples");
    check(model.num_exits() >= 1, "model: has no exits");
    check(c.mode == "plain" || model.num_exits() >= 2, "--mode " + c.mode + ": the model has no internal classifiers");
    const auto want = sample_dims(model, "model");
    check_data_fits(model, train, "training data");
    if (val) check_data_fits(model, *val, "test data");
    const auto classes = exit_classes(model);
    for (size_t k = 0; k < classes.size(); ++k)
        check(classes[k] == train.num_classes, "model: exit " + std::to_string(k) + " has " +
                                                   std::to_string(classes[k]) + " outputs, the data set " +
                                                   std::to_string(train.num_classes) + " classes");
    if (teacher) {
        check(sample_dims(*teacher, "teacher") == want, "teacher: its input does not match the student's");
        check(exit_classes(*teacher).back() == train.num_classes,
              "teacher: its final exit does not have " + std::to_string(train.num_classes) + " classes");
    }
    check(!(c.trades && (c.adversarial || teacher)), "TRADES: not together with PGD training or a teacher");
    check(!c.mimic_exits || teacher, "exit mimicry (model stealing) needs a victim model (--teacher)");
    check(!c.mimic_exits || teacher->num_exits() == model.num_exits(),
          "exit mimicry: the victim has " + std::to_string(teacher ? teacher->num_exits() : 0) +
              " exits, the copy " + std::to_string(model.num_exits()) + "; build the copy with as many");
    check(!c.mimic_exits || exit_classes(*teacher) == exit_classes(model),
          "exit mimicry: the victim's exits and the copy's differ in classes");
    if (c.threads > 0) omp_set_num_threads(c.threads);

    if (c.renormalize) {
        auto backend = make_backend(c.backend.empty() ? default_backend_name() : c.backend, c.threads);
        inserted_ = insert_batchnorms(model, train, c.renormalize_images, *backend);
    }
    try {
        if (!c.reinit.empty()) reinitialize(model.graph, c.reinit, c.seed);
        if (c.prune > 0) mask_ = magnitude_prune(model.graph, c.prune);
        params_ = select_parameters(model.graph, c.mode, c.train_only);
        for (int i : trainable_nodes(model.graph))
            if (!std::binary_search(params_.begin(), params_.end(), i)) frozen_.push_back(i);
        // Cleared flags make Plan::backward skip the frozen parts entirely (and allocate no gradient).
        for (int i : frozen_) model.graph.nodes[i].trainable = false;

        batch_ = int(std::min<int64_t>(c.batch, train.size()));
        steps_per_epoch_ = train.size() / batch_;  // the last incomplete batch is dropped
        c.schedule.total_steps = std::max<int64_t>(1, steps_per_epoch_ * c.epochs);  // --epochs 0: no step runs
        validate(c.schedule);
        const std::string backend_name = c.backend.empty() ? default_backend_name() : c.backend;
        backend_ = make_backend(backend_name, c.threads);
        // TRADES runs each batch clean and attacked as one batch of twice the size.
        plan_ = std::make_unique<Plan>(model, *backend_, batch_ * (c.trades ? 2 : 1), /*keep_all=*/true);
        for (int i : params_) {
            Node& n = model.graph.nodes[i];
            refs_.push_back({n.name, n.value.data(), n.value.numel()});
            mask_index_.push_back(mask_.index_of(i));
        }
        optimizer_ = make_optimizer(c.optimizer, refs_);
        if (teacher) {
            teacher_backend_ = make_backend(backend_name, c.threads);
            teacher_plan_ = std::make_unique<Plan>(*teacher, *teacher_backend_, batch_);
        }
    } catch (...) {
        for (int i : frozen_) model.graph.nodes[i].trainable = true;
        plan_.reset();
        if (!inserted_.empty()) fold_batchnorms(model.graph, inserted_);
        throw;
    }
}

Trainer::~Trainer() {
    for (int i : frozen_) model_.graph.nodes[i].trainable = true;
    // The plans read the graph: they go before it is rebuilt.
    plan_.reset();
    teacher_plan_.reset();
    try {  // a destructor must not throw: a failed fold is reported, and the model keeps the BatchNorms
        if (!inserted_.empty()) fold_batchnorms(model_.graph, inserted_);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "warning: the re-inserted BatchNorms were not folded back: %s\n", e.what());
    }
}

std::vector<float> Trainer::exit_weights(int64_t step) const {
    const int exits = model_.num_exits();
    if (config_.mode == "sdn") return sdn_exit_weights(exits, double(step + 1) / double(config_.schedule.total_steps));
    if (config_.mode == "ic-only") {
        std::vector<float> w(exits, 1.0f);
        w.back() = 0.0f;  // the final classifier is part of the frozen backbone
        return w;
    }
    return final_exit_weights(exits);
}

EpochStats Trainer::train_epoch(const ProgressFn& progress) {
    check(!finished(), "training: all " + std::to_string(config_.epochs) + " epochs are already done");
    const TrainConfig& c = config_;
    const bool bn_training = c.mode != "ic-only";  // ic-only: the frozen backbone stays in inference mode
    const int exits = model_.num_exits();
    const auto classes = exit_classes(model_);
    const int64_t per_sample = train_.images.numel() / train_.size();

    std::mt19937_64 rng = epoch_rng(c.seed, epoch_);
    const std::vector<int> order = shuffled_order(int(train_.size()), rng);
    const int rows = c.trades ? 2 * batch_ : batch_;  // TRADES: clean rows, then their attacked copies
    std::vector<float> x(size_t(rows) * per_sample);
    std::vector<int> labels(batch_);
    std::vector<std::vector<float>> grads(exits);
    for (int k = 0; k < exits; ++k) grads[k].resize(size_t(rows) * classes[k]);
    std::vector<const float*> seeds(exits), param_grads(params_.size());

    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    float lr = 0;
    const double start = now_s();
    const int n = batch_;
    for (int64_t b = 0; b < steps_per_epoch_; ++b) {
        make_batch(train_, order.data() + b * n, n, c.augment, rng, x.data(), labels.data());
        const std::vector<float> w = exit_weights(step_);
        if (c.adversarial) pgd_attack(*plan_, model_, x.data(), labels.data(), n, w, c.pgd, rng);
        if (c.trades) {
            std::copy_n(x.data(), n * per_sample, x.data() + n * per_sample);
            trades_attack(*plan_, model_, x.data() + n * per_sample, n, w, c.pgd, rng);
        }
        const uint64_t seed = step_seed(c.seed, step_);
        plan_->run_all(x.data(), rows, bn_training, seed);
        const float* teacher_logits = nullptr;
        MimicTargets mimic;
        if (teacher_plan_) {
            teacher_plan_->run_all(x.data(), n, false);
            teacher_logits = teacher_plan_->exit_logits(teacher_->num_exits() - 1).data;
            if (c.mimic_exits) {
                std::vector<const float*> victim(exits);
                for (int k = 0; k < exits; ++k) victim[k] = teacher_plan_->exit_logits(k).data;
                mimic = exit_mimicry_targets(victim, n, classes[0], teacher_->thresholds, c.mimic_margin);
            }
        }
        double loss = 0;
        int deepest = -1, hits = 0;
        for (int k = 0; k < exits; ++k) {
            seeds[k] = nullptr;
            if (w[k] == 0) continue;
            const float* z = plan_->exit_logits(k).data;
            int* hit = &hits;
            if (c.trades) {
                float* g = grads[k].data();
                const int64_t half = int64_t(n) * classes[k];
                loss += w[k] * trades_loss(z, z + half, labels.data(), n, classes[k], c.trades_beta, g, g + half, w[k],
                                           hit);
            } else if (c.mimic_exits)  // hits: agreement with the victim's answer, as the attacker has no labels
                loss += w[k] * soft_cross_entropy(z, mimic.per_exit[k].data(), n, classes[k], grads[k].data(), w[k], hit);
            else
                loss += w[k] * (teacher_logits ? distillation_loss(z, teacher_logits, labels.data(), n, classes[k],
                                                                   c.kd_temperature, c.kd_alpha, grads[k].data(), w[k], hit)
                                               : softmax_cross_entropy(z, labels.data(), n, classes[k], grads[k].data(),
                                                                       w[k], hit));
            seeds[k] = grads[k].data();
            deepest = k;
        }
        check(deepest >= 0, "training: no exit has a loss weight");
        // A diverged step would write NaN into every weight it reaches and train on silently.
        if (!std::isfinite(loss))
            fail("training diverged: the loss is not finite at step " + std::to_string(step_ + 1) + " (epoch " +
                 std::to_string(epoch_ + 1) + "); lower --lr");
        plan_->backward(seeds.data(), false, bn_training, seed);
        for (size_t i = 0; i < params_.size(); ++i) {
            float* g = plan_->param_grad(params_[i]).data;
            if (mask_index_[i] >= 0) mask_.apply_to_grad(size_t(mask_index_[i]), g);
            param_grads[i] = g;
        }
        lr = learning_rate(c.schedule, step_);
        optimizer_->step(refs_, param_grads, lr);
        if (!mask_.empty()) mask_.apply_to_values(model_.graph);
        ++step_;
        loss_sum += loss;
        correct += hits;  // the last weighted exit's count: the deepest one trained
        seen += n;
        if (progress) progress(seen, steps_per_epoch_ * n, loss_sum / double(b + 1));
    }
    EpochStats s;
    s.seconds = now_s() - start;
    s.epoch = ++epoch_;
    s.lr = lr;
    s.train_loss = loss_sum / double(steps_per_epoch_);
    s.train_acc = seen ? double(correct) / double(seen) : 0;
    s.images_per_s = s.seconds > 0 ? double(seen) / s.seconds : 0;
    train_seconds_ += s.seconds;
    return s;
}

std::vector<double> Trainer::evaluate(const Dataset& data, int limit) const {
    const int64_t count = limit < 0 ? data.size() : std::min<int64_t>(limit, data.size());
    std::vector<double> acc(model_.num_exits(), 0.0);
    if (count == 0) return acc;
    // A fresh plan per evaluation: it sees the current weights whatever a backend prepares.
    auto backend = make_backend(config_.backend.empty() ? default_backend_name() : config_.backend, config_.threads);
    const int batch = int(std::min<int64_t>(256, count));
    Plan plan(model_, *backend, batch);
    const int64_t per_sample = data.images.numel() / data.size();
    std::vector<int64_t> hits(acc.size(), 0);
    for (int64_t at = 0; at < count; at += batch) {
        const int n = int(std::min<int64_t>(batch, count - at));
        plan.run_all(data.images.data() + at * per_sample, n, false);
        for (size_t k = 0; k < acc.size(); ++k) {
            TensorView z = plan.exit_logits(int(k));
            const int64_t cls = z.numel() / n;
            for (int r = 0; r < n; ++r) {
                const float* row = z.data + r * cls;
                hits[k] += std::max_element(row, row + cls) - row == data.labels[at + r];
            }
        }
    }
    for (size_t k = 0; k < acc.size(); ++k) acc[k] = double(hits[k]) / double(count);
    return acc;
}

std::vector<EpochStats> Trainer::fit(int max_epochs, const ProgressFn& progress,
                                     const std::function<void(const EpochStats&)>& on_epoch) {
    std::vector<EpochStats> out;
    for (int done = 0; !finished() && (max_epochs < 0 || done < max_epochs); ++done) {
        EpochStats s = train_epoch(progress);
        if (val_) s.test_acc = evaluate(*val_, config_.val_limit);
        history_.push_back(s);
        if (!config_.checkpoint_path.empty()) save_checkpoint(config_.checkpoint_path);
        if (!config_.log_path.empty()) {
            nlohmann::json j{{"epoch", s.epoch},
                             {"lr", s.lr},
                             {"train_loss", s.train_loss},
                             {"train_acc", s.train_acc},
                             {"test_acc", s.test_acc},
                             {"seconds", s.seconds},
                             {"images_per_s", s.images_per_s}};
            std::ofstream log(config_.log_path, std::ios::app);
            log << j.dump() << "\n";
            check(log.good(), config_.log_path + ": cannot append to the training log");
        }
        if (on_epoch) on_epoch(s);
        out.push_back(s);
    }
    return out;
}

}  // namespace engine::train
