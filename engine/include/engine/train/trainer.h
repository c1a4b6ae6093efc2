// Training a multi-exit model on the engine: epochs of shuffled, augmented batches, one forward
// and backward pass of a keep_all Plan per batch, an optimiser step, per-epoch evaluation,
// a JSON-lines log and an atomic checkpoint after every epoch from which a run resumes exactly.
//
// Determinism: everything random derives from (seed, epoch) and the step number, so the same
// configuration, data and thread count give bit-identical weights, also across a stop and resume
// at an epoch boundary. A different thread count may change the summation order of gradients.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/dataset.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "engine/train/adversarial.h"
#include "engine/train/augment.h"
#include "engine/train/optimizer.h"
#include "engine/train/params.h"
#include "engine/train/schedule.h"

namespace engine::train {

struct ENGINE_API TrainConfig {
    std::string mode = "plain";  // "plain" (final exit), "sdn" (joint SDN loss), "ic-only" (frozen backbone)
    int epochs = 1;
    int batch = 128;
    uint64_t seed = 0;
    OptimizerConfig optimizer;
    ScheduleConfig schedule;  // total_steps is set by the trainer (epochs x batches per epoch)
    AugmentConfig augment;
    std::string train_only;        // regex: train only matching parameters (BatchNorm statistics still update)
    std::string reinit;            // regex: re-initialise matching parameters before training
    double prune = 0;              // global magnitude pruning fraction, mask fixed while training
    bool renormalize = false;      // train a BN-folded model with BatchNorms re-inserted (renormalize.h);
                                   // reinit and prune then act on the rescaled weights
    int renormalize_images = 512;  // training images their initial statistics are estimated from
    bool adversarial = false;      // PGD adversarial training
    bool trades = false;           // adversarial training by TRADES (attack and loss) instead of PGD's
    float trades_beta = 6.0f;      // weight of TRADES' divergence term
    PgdConfig pgd;
    float kd_temperature = 4.0f;  // knowledge distillation (with a teacher): every trained exit learns
                                  // from the teacher's final exit, run in inference mode on the same batch
    float kd_alpha = 0.5f;
    bool mimic_exits = false;     // with a teacher: the model-stealing attack of exit_mimicry.h instead of
                                  // distillation; the data set's labels are not used
    float mimic_margin = 0.1f;    // how far below each threshold the copy's earlier exits are held
    std::string backend;          // empty: the default backend
    int threads = 0;              // threads of the backend's kernels (0: one per core)
    int val_limit = 1000;         // test images evaluated after each epoch (-1: all)
    std::string log_path;         // JSON lines, one per epoch (appended); empty: none
    std::string checkpoint_path;  // written after every epoch; empty: none
};

struct ENGINE_API EpochStats {
    int epoch = 0;                 // 1-based
    float lr = 0;                  // at the epoch's last step
    double train_loss = 0;         // mean weighted loss over the epoch's batches
    double train_acc = 0;          // deepest trained exit, on the (augmented) training batches
    std::vector<double> test_acc;  // per exit, on the first val_limit test images
    double seconds = 0;            // training time of the epoch (evaluation excluded)
    double images_per_s = 0;
};

class ENGINE_API Trainer {
public:
    // done images so far in this epoch, their total, mean loss so far.
    using ProgressFn = std::function<void(int64_t done, int64_t total, double loss)>;

    // model is trained in place; train, val and teacher must outlive the trainer. Re-initialisation
    // and pruning happen here (a resumed checkpoint then overrides all values and the mask).
    // Parameters not trained have their trainable flags cleared until the trainer is destroyed.
    // With config.renormalize the model holds the inserted BatchNorms while the trainer lives
    // (checkpoints included); the destructor folds them back into their convolutions.
    Trainer(Model& model, const Dataset& train, const Dataset* val, TrainConfig config, const Model* teacher = nullptr);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Runs epochs until config.epochs are done, or at most max_epochs more (-1: no limit); after
    // each, evaluates, writes the checkpoint and the log line, then calls on_epoch.
    std::vector<EpochStats> fit(int max_epochs = -1, const ProgressFn& progress = {},
                                const std::function<void(const EpochStats&)>& on_epoch = {});
    EpochStats train_epoch(const ProgressFn& progress = {});

    // Per-exit accuracy in inference mode on the first `limit` samples (-1: all).
    std::vector<double> evaluate(const Dataset& data, int limit = -1) const;

    // Model values, optimiser state, pruning mask, epoch and step as one safetensors file (atomic).
    void save_checkpoint(const std::string& path) const;
    // Restores a checkpoint written by a run with the same trajectory-relevant configuration and
    // the same graph; throws naming the file and the first thing that differs.
    void load_checkpoint(const std::string& path);

    int epochs_done() const { return epoch_; }
    bool finished() const { return epoch_ >= config_.epochs; }
    int64_t steps_per_epoch() const { return steps_per_epoch_; }
    double train_seconds() const { return train_seconds_; }
    const std::vector<EpochStats>& history() const { return history_; }
    const std::vector<int>& parameters() const { return params_; }
    const PruneMask& prune_mask() const { return mask_; }
    const std::vector<int>& inserted_batchnorms() const { return inserted_; }  // config.renormalize
    const TrainConfig& config() const { return config_; }
    // The per-exit loss weights used at a given step.
    std::vector<float> exit_weights(int64_t step) const;

private:
    std::string config_json() const;  // what must match for a checkpoint to resume this run

    Model& model_;
    const Dataset& train_;
    const Dataset* val_;
    TrainConfig config_;
    const Model* teacher_;
    std::vector<int> params_;    // trained parameter nodes
    std::vector<int> frozen_;    // trainable nodes whose flag is cleared while training
    std::vector<int> inserted_;  // BatchNorms inserted by config.renormalize
    std::vector<ParamRef> refs_;
    std::vector<int> mask_index_;  // per trained parameter: its index in mask_, or -1
    PruneMask mask_;
    std::unique_ptr<Backend> backend_, teacher_backend_;
    std::unique_ptr<Plan> plan_, teacher_plan_;
    std::unique_ptr<Optimizer> optimizer_;
    int batch_ = 0;
    int64_t steps_per_epoch_ = 0;
    int epoch_ = 0;     // completed epochs
    int64_t step_ = 0;  // completed optimiser steps
    double train_seconds_ = 0;
    std::vector<EpochStats> history_;
};

}  // namespace engine::train
