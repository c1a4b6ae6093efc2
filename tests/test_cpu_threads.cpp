// The native backend's threads: denormals flushed on every thread that runs its kernels, workers
// pinned inside the caller's CPU mask, the caller's own mask untouched.
#include <doctest/doctest.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "engine/plan.h"
#include "engine/model_zoo.h"
#include "test_util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>

namespace {

constexpr unsigned kFtzDaz = 0x8040;

// New threads inherit the creator's MXCSR: start each case from the default (denormals kept).
void keep_denormals() { _mm_setcsr(_mm_getcsr() & ~kFtzDaz); }

// How many of `threads` team members of the calling thread have FTZ and DAZ set.
int flushing_threads(int threads) {
    int count = 0;
#pragma omp parallel num_threads(threads) reduction(+ : count)
    count += (_mm_getcsr() & kFtzDaz) == kFtzDaz;
    return count;
}

bool same_mask(const cpu_set_t& a, const cpu_set_t& b) { return CPU_EQUAL(&a, &b); }

cpu_set_t own_mask() {
    cpu_set_t s;
    CPU_ZERO(&s);
    sched_getaffinity(0, sizeof s, &s);
    return s;
}

}  // namespace

TEST_CASE("a native backend flushes denormals on the caller and on every worker") {
    for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        int flushing = -1;
        std::thread([&] {
            keep_denormals();
            REQUIRE(flushing_threads(threads) == 0);
            auto backend = engine::make_backend("native", threads);
            flushing = flushing_threads(threads);
        }).join();
        CHECK(flushing == threads);
    }
}

TEST_CASE("a thread other than the creator gets its team flushed on its first forward") {
    using namespace engine;
    Model model = build_model("small", 10, 32, 1);
    auto backend = make_backend("native", 2);
    Tensor x = test::random_tensor(Shape{1, 3, 32, 32}, 1, 0, 1);
    Plan plan(model, *backend, 1);
    int flushing = -1;
    std::thread([&] {
        keep_denormals();
        plan.run_all(x.data(), 1);
        flushing = flushing_threads(2);
    }).join();
    CHECK(flushing == 2);
}

TEST_CASE("workers are pinned inside the caller's mask; the caller's mask is unchanged") {
    if (std::getenv("OMP_PROC_BIND") || std::getenv("OMP_PLACES") || std::getenv("GOMP_CPU_AFFINITY") ||
        std::getenv("KMP_AFFINITY"))
        return;  // the user's binding wins
    std::thread([] {
        const cpu_set_t before = own_mask();
        auto one = engine::make_backend("native", 1);
        CHECK(same_mask(own_mask(), before));
        auto two = engine::make_backend("native", 2);
        CHECK(same_mask(own_mask(), before));
        std::vector<cpu_set_t> masks(2);
#pragma omp parallel num_threads(2)
        masks[omp_get_thread_num()] = own_mask();
        CHECK(same_mask(masks[0], before));
        CHECK(CPU_COUNT(&masks[1]) == 1);
        cpu_set_t inside;
        CPU_AND(&inside, &masks[1], &before);
        CHECK(CPU_COUNT(&inside) == 1);
    }).join();
}

#endif
