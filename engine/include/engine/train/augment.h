// Data order and augmentation for training, deterministic from (seed, epoch): the epoch's
// generator is a std::mt19937_64 seeded from both, and everything random in an epoch (order,
// crops, flips, adversarial starts) draws from it in a fixed sequence, independent of threads.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <random>
#include <vector>

#include "engine/dataset.h"

namespace engine::train {

// The generator for one epoch (0-based) of a run with this seed.
ENGINE_API std::mt19937_64 epoch_rng(uint64_t seed, int64_t epoch);

// A uniformly shuffled permutation of 0..n-1 (Fisher-Yates with rng's raw output, so the order
// does not depend on the standard library's distributions).
ENGINE_API std::vector<int> shuffled_order(int n, std::mt19937_64& rng);

// Uniform float in [0, 1) from 24 random bits.
ENGINE_API float uniform01(std::mt19937_64& rng);

struct ENGINE_API AugmentConfig {
    bool enabled = true;
    int pad = 4;       // random crop of the original size from the image zero-padded by `pad`
    bool flip = true;  // horizontal flip with probability 1/2
};

// Copies samples order[0..n) of data into out (n x C x H x W), augmenting each with a random
// crop and flip drawn from rng in sample order; labels_out receives their labels.
ENGINE_API void make_batch(const Dataset& data, const int* order, int n, const AugmentConfig& config,
                           std::mt19937_64& rng, float* out, int* labels_out);

}  // namespace engine::train
