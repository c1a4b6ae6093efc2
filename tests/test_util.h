// Helpers shared by the test suites.
#pragma once
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "engine/tensor.h"

namespace test {

inline std::string shared_dir() { return ENGINE_SHARED_DIR; }

// True when ../shared is present; otherwise prints why the calling test is skipped.
inline bool have_shared(const char* what) {
    if (std::filesystem::exists(shared_dir() + "/models")) return true;
    std::printf("SKIPPED %s: %s/models not found (the shared material sits beside the checkout)\n", what,
                shared_dir().c_str());
    return false;
}

inline engine::Tensor random_tensor(engine::Shape shape, uint32_t seed, float lo = -1, float hi = 1) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    engine::Tensor t(shape);
    for (auto& v : t.values()) v = dist(rng);
    return t;
}

}  // namespace test
