// Helpers shared by the test suites.
#pragma once
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace test {

// ../shared beside the checkout, or $ENGINE_SHARED_DIR when set.
inline std::string shared_dir() {
    const char* dir = std::getenv("ENGINE_SHARED_DIR");
    return dir && *dir ? dir : ENGINE_SHARED_DIR;
}

// Test material that is missing (../shared, a Debian data package) fails the test under CI
// (CI=true), where .ci/run has installed everything; elsewhere the test is skipped: it prints why,
// and the suite then exits 77 (test_main.cpp), which CTest reports as skipped, not passed.
inline bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}
inline int& skipped_tests() {
    static int count = 0;
    return count;
}
inline void skip(const std::string& what, const std::string& why) {
    std::printf("SKIPPED %s: %s\n", what.c_str(), why.c_str());
    ++skipped_tests();
}
inline bool have_material(bool present, const std::string& what, const std::string& why) {
    if (present) return true;
    if (in_ci())
        FAIL_CHECK(what << ": " << why << " (CI=true: test material must be present)");
    else
        skip(what, why);
    return false;
}
inline bool have_shared(const char* what) {
    return have_material(std::filesystem::exists(shared_dir() + "/models"), what,
                         shared_dir() + "/models not found (the shared material sits beside the checkout)");
}

// The backends every op, gradient and conformance test runs on: all that this build holds and this
// machine can run (cuda needs a GPU; test_cuda reports that skip), the reference first. Tolerances
// are relative to the reference loops (oneDNN and cuDNN reorder sums more).
inline std::vector<std::string> backends() {
    static const std::vector<std::string> usable = [] {
        std::vector<std::string> names;
        for (const auto& name : engine::backend_names()) {
            try {
                engine::make_backend(name, 1);
                names.push_back(name);
            } catch (const std::exception& e) {
                std::printf("backend %s cannot run here, left out: %s\n", name.c_str(), e.what());
            }
        }
        return names;
    }();
    return usable;
}
inline double tolerance(const std::string& backend) { return backend == "ref" || backend == "native" ? 1e-5 : 1e-4; }

inline engine::Tensor random_tensor(engine::Shape shape, uint32_t seed, float lo = -1, float hi = 1) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    engine::Tensor t(shape);
    for (auto& v : t.values()) v = dist(rng);
    return t;
}

}  // namespace test
