// Plan once, run many: once a plan is made, inference allocates nothing on the heap (the plan's
// warm-up run at construction did the backend's lazy set-up).
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "engine/plan.h"
#include "engine/model_zoo.h"
#include "test_util.h"

static std::atomic<long> g_allocations{0};
static volatile bool g_armed = false;  // with TRAP_ALLOC set, an allocation while armed traps (for a debugger)

void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (g_armed && std::getenv("TRAP_ALLOC")) __builtin_trap();
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("early-exit inference allocates nothing, from the first run on") {
    using namespace engine;
    // small: direct and Winograd 3x3; mobilenet: packed 1x1 GEMMs (the narrow kernel on 2x2),
    // depthwise; vgg16: im2col GEMMs on 4x4 and 2x2 planes, max pooling. One thread and two.
    for (const std::string arch : {"small", "mobilenet", "vgg16"}) {
        Model model = build_model(arch, 10, 32, 1);
        model.set_threshold(0.5f);
        Tensor x = test::random_tensor(Shape{16, 3, 32, 32}, 2, 0, 1);
        for (int threads : {1, 2}) {
            auto backend = make_backend("native", threads);
            for (int batch : {1, 16}) {
                CAPTURE(arch);
                CAPTURE(threads);
                CAPTURE(batch);
                Plan plan(model, *backend, batch);
                std::vector<SampleResult> results(batch);
                const long before = g_allocations.load();
                g_armed = true;
                for (int i = 0; i < 3; ++i) {
                    plan.run_early(x.data(), batch, model.thresholds.data(), results.data());
                    plan.run_all(x.data(), batch);
                }
                g_armed = false;
                CHECK(g_allocations.load() - before == 0);
            }
        }
    }
}
