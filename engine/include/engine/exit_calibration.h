// Thresholds for a chosen exit histogram: what an owner sets to trade accuracy for speed, and what a
// pirate whose fine-tuning made its exits timid (re-initialised heads, adversarial training) does to
// get back the victim's early-exit speed.
#pragma once
#include <vector>

#include "engine/api.h"
#include "engine/backend.h"
#include "engine/dataset.h"
#include "engine/model.h"

namespace engine {

// Per-exit thresholds under which `shares[k]` of `data` leaves at exit k (shares: one per exit, each
// in [0, 1], summing to 1 within 1e-3; the last exit takes whatever is left). Exits are set in order:
// exit k's threshold is the top probability of the round(shares[k] * n)-th most confident sample
// still running there, so ties can let a few more leave; an exit given no share never fires.
ENGINE_API std::vector<float> thresholds_for_exit_shares(const Model& model, Backend& backend, const Dataset& data,
                                                         const std::vector<double>& shares, int batch = 128);

// The share of `data` that leaves `reference` at each exit under its own thresholds: with
// thresholds_for_exit_shares, what gives another model the reference's speed.
ENGINE_API std::vector<double> exit_shares(const Model& reference, Backend& backend, const Dataset& data,
                                           int batch = 128);

}  // namespace engine
