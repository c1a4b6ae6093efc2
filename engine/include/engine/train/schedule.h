// Learning-rate schedules, evaluated per optimiser step (as PyTorch schedulers stepped every batch).
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <string>
#include <vector>

namespace engine::train {

struct ENGINE_API ScheduleConfig {
    std::string kind = "onecycle";  // "onecycle", "cosine", "multistep" or "constant"
    float lr = 0.1f;                // peak (one-cycle) or initial learning rate
    int64_t total_steps = 1;
    // one-cycle (torch.optim.lr_scheduler.OneCycleLR, cosine annealing): from lr/div_factor up to lr
    // over the first pct_start of the run, then down to lr/(div_factor*final_div_factor).
    float pct_start = 0.3f, div_factor = 25.0f, final_div_factor = 1e4f;
    // multistep: lr * gamma^(milestones passed); milestones as fractions of the run.
    std::vector<double> milestones = {0.5, 0.75};
    float gamma = 0.1f;
    // cosine (CosineAnnealingLR with T_max = total_steps): down to min_lr.
    float min_lr = 0.0f;
};

// Learning rate for the 0-based optimiser step `step`. Throws on an unknown kind.
ENGINE_API float learning_rate(const ScheduleConfig& config, int64_t step);

// Checks the kind and the numbers; throws "schedule: <problem>".
ENGINE_API void validate(const ScheduleConfig& config);

}  // namespace engine::train
