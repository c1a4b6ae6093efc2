// The work of one batch-1 inference to each exit, for `valgrind --tool=callgrind --instr-atstart=no`:
// instrumentation is on only around the timed runs, so the instruction counts it reports are those
// of `--reps` runs to exit `--exit` (all exits in turn without it), free of the plan's set-up and of
// plan-time kernel tuning. Run it once without valgrind first, so that the tuned choices are in the
// kernel cache file (native_conv_tuner.h) and the run under valgrind does not time kernels.
// usage: bench_instructions MODEL [--backend native] [--exit K] [--reps N]
#include <valgrind/callgrind.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/plan.h"

using namespace engine;

int main(int argc, char** argv) {
    std::string model_path, backend_name = "native";
    int exit = -1, reps = 10;
    CLI::App app{"bench_instructions: the work of batch-1 inferences, for callgrind"};
    app.add_option("model", model_path, "the model")->required();
    app.add_option("--backend", backend_name, "backend");
    app.add_option("--exit", exit, "run to this exit only (default: every exit in turn)")->check(CLI::Range(0, 1000));
    app.add_option("--reps", reps, "runs per exit")->check(CLI::Range(1, 10000000));
    CLI11_PARSE(app, argc, argv);
    try {
        Model model = load_model(model_path);
        auto backend = make_backend(backend_name, 1);
        Plan plan(model, *backend, 1);
        const int K = model.num_exits();
        if (exit >= K)
            throw Error("--exit " + std::to_string(exit) + ": the model has exits 0-" + std::to_string(K - 1));
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
