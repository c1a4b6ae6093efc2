// The work of one batch-1 inference to each exit, for `valgrind --tool=callgrind --instr-atstart=no`:
// instrumentation is on only around the timed runs, so the instruction counts it reports are those
// of `--reps` runs to exit `--exit` (all exits in turn without it), free of the plan's set-up and of
// plan-time kernel tuning. Run it once without valgrind first, so that the tuned choices are in the
// kernel cache file (native_conv_tuner.h) and the run under valgrind does not time kernels.
// usage: bench_instructions MODEL [--backend native] [--exit K] [--reps N]
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/plan.h"

using namespace engine;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_instructions MODEL [--backend NAME] [--exit K] [--reps N]\n");
        return 2;
    }
    std::string backend_name = "native";
    int exit = -1, reps = 10;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--backend"))
            backend_name = argv[i + 1];
        else if (!std::strcmp(argv[i], "--exit"))
            exit = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--reps"))
            reps = std::atoi(argv[i + 1]);
    }
    try {
        Model model = load_model(argv[1]);
        auto backend = make_backend(backend_name, 1);
        Plan plan(model, *backend, 1);
        const int K = model.num_exits();
        Tensor image(Shape{1, 3, 32, 32});
        for (int64_t i = 0; i < image.numel(); ++i) image[i] = float((i * 7919) % 1000) / 1000.0f;
        for (int k = exit < 0 ? 0 : exit; k < (exit < 0 ? K : exit + 1); ++k) {
            std::vector<float> q(K, 2.0f);  // exit k fires, none before
            q[k] = 0.0f;
            SampleResult r;
            plan.run_early(image.data(), 1, q.data(), &r);
            CALLGRIND_ZERO_STATS;
            CALLGRIND_START_INSTRUMENTATION;
            for (int i = 0; i < reps; ++i) plan.run_early(image.data(), 1, q.data(), &r);
            CALLGRIND_STOP_INSTRUMENTATION;
            char name[32];
            std::snprintf(name, sizeof name, "exit%d", k);
            CALLGRIND_DUMP_STATS_AT(name);
            std::printf("exit %d: class %d\n", k, r.cls);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_instructions: %s\n", e.what());
        return 1;
    }
    return 0;
}
