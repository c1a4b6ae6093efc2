// Two sets of native kernel choices (two kernel cache files, native_conv_tuner.h) on one model, in one
// process, batch 1, one pinned thread, full depth: the two plans run alternately, so that whatever
// else loads the machine falls on both alike. Prints each side's p10, median and p99 and the median of
// the paired ratios B/A: a kernel choice's effect on the whole network, measurable on a busy machine
// (the p10s are the runs least disturbed by others).
// A file that lacks a convolution's choice gets it tuned and written, as the engine does.
// usage: bench_choices A.json B.json [--reps 2000] [--model ../shared/models/resnet56_s1.onnx]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "native/native_conv_tuner.h"
#include "pin_cpu.h"

using namespace engine;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    std::string cache[2];
    int reps = 2000;
    std::string model_path = "../shared/models/resnet56_s1.onnx";
    CLI::App app{"bench_choices: two sets of native kernel choices on one model, timed alternately"};
    app.add_option("A", cache[0], "first kernel cache file")->required();
    app.add_option("B", cache[1], "second kernel cache file")->required();
    app.add_option("--reps", reps, "runs of each side")->check(CLI::Range(1, 10000000));
    app.add_option("--model", model_path, "the model");
    CLI11_PARSE(app, argc, argv);
    try {
        bench::pin_to_first_cpu();
        std::printf("CPU: %s\n", native::cpu_model().c_str());
        const Model model = load_model(model_path);
        const int K = model.num_exits();
        std::vector<std::unique_ptr<Backend>> backends;
        std::vector<std::unique_ptr<Plan>> plans;
        for (int side = 0; side < 2; ++side) {
            setenv("ENGINE_KERNEL_CACHE", cache[side].c_str(), 1);
            native::kernel_cache_reset();  // read this side's file at the next choice
            backends.push_back(make_backend("native", 1));
            plans.push_back(std::make_unique<Plan>(model, *backends.back(), 1));
        }
        std::vector<float> image(3 * 32 * 32);
        for (size_t i = 0; i < image.size(); ++i) image[i] = float((i * 7919) % 1000) / 1000.0f;
        const std::vector<float> q(K, 2.0f);  // no early exit: the final one always fires
        SampleResult r;
        std::vector<double> ms[2], ratio;
        for (int i = -reps / 10; i < reps; ++i) {
            double t[2];
            for (int k = 0; k < 2; ++k) {
                const int side = (i + k) & 1;  // which side goes first alternates
                const auto t0 = std::chrono::steady_clock::now();
                plans[side]->run_early(image.data(), 1, q.data(), &r);
                t[side] = ms_since(t0);
            }
            if (i < 0) continue;
            ms[0].push_back(t[0]), ms[1].push_back(t[1]), ratio.push_back(t[1] / t[0]);
        }
        for (int side = 0; side < 2; ++side)
            std::printf("%c %-32s p10 %.3f ms  median %.3f ms  p99 %.3f ms\n", 'A' + side, cache[side].c_str(),
                        quantile(ms[side], 0.1), quantile(ms[side], 0.5), quantile(ms[side], 0.99));
        std::printf(
            "B/A: ratio of p10s %.3f, of medians %.3f; median of paired ratios %.3f (quartiles %.3f %.3f), %d pairs\n",
            quantile(ms[1], 0.1) / quantile(ms[0], 0.1), quantile(ms[1], 0.5) / quantile(ms[0], 0.5),
            quantile(ratio, 0.5), quantile(ratio, 0.25), quantile(ratio, 0.75), reps);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_choices: %s\n", e.what());
        return 1;
    }
    return 0;
}
