// Per-exit batch-1 latency, exit separability, batch-128 throughput and the FMA peak, for every
// backend and thread count, on SDN ResNet-56, MobileNet and VGG-16. Prints one table.
// "% of peak" counts the multiply-adds of direct convolution; the native backend's Winograd layers do
// 2.25x (F(2x2)) or 4x (F(4x4)) fewer, so its figure can pass 100 %: it says how far the time is
// below the direct FMA floor. Exits are timed in turn, round after round. "floor CV" is the CV of a
// compute-only job of the exit's median length, timed right after each of its runs: the part of the
// spread that the machine, not the engine, contributes.
// "step %" is the fraction of peak of the exit's own segment: its multiply-adds over the step in median
// latency from the exit before (the stages of ResNet-56 should run alike).
// With --q, batch-1 early exit on one thread over the first --images test images of --data (CIFAR-10):
// mean, median and p99 time per image, against which bench/ort_segments.py runs ONNX Runtime cut
// into per-exit segments.
// usage: bench_exits [--reps N] [--shared DIR] [--models resnet56,mobilenet,vgg16] [--backends native,onednn]
//                    [--raw FILE]   (every batch-1 time, as CSV model,backend,threads,exit,ms)
//                    [--q 0.9 [--images 1000] [--data DIR]] [--threads 1,2]
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/plan.h"
#include "fma_peak.h"
#include "engine/model_zoo.h"

using namespace engine;

namespace {

struct Stats {
    double median, p99, mean, sd;
};

Stats stats_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double sum = 0, sum2 = 0;
    for (double x : v) sum += x, sum2 += x * x;
    double mean = sum / v.size();
    return {v[v.size() / 2], v[std::min(v.size() - 1, size_t(0.99 * v.size()))], mean,
            std::sqrt(std::max(0.0, sum2 / v.size() - mean * mean))};
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
    return out;
}

// The CPUs the bench was started on (`taskset -c ...`): latency runs pin one of them, the
// two-thread runs get them all back.
cpu_set_t g_inherited;

void pin_to_first_inherited_cpu() {
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &g_inherited)) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
}

Model load_arch(const std::string& arch, const std::string& shared) {
    const std::string onnx = shared + "/models/" + arch + "_s1.onnx";
    if (std::filesystem::exists(onnx)) return load_model(onnx);  // the peers run these same weights
    return build_model(arch, 10, 32, 1);
}

// Batch-1 early exit at threshold q on one thread over the first `images` test images: the time per
// image (mean, median, p99) and where they left.
int early_exit_table(const std::vector<std::string>& archs, const std::vector<std::string>& backends,
                     const std::string& shared, const std::string& data_dir, float q, int images) {
    const Dataset data = load_dataset_dir(data_dir, false, images);
    const int64_t n = data.size(), image_floats = data.images.numel() / std::max<int64_t>(n, 1);
    for (const auto& arch : archs) {
        Model model = load_arch(arch, shared);
        const int K = model.num_exits();
        const std::vector<float> thresholds(K, q);
        for (const auto& backend_name : backends) {
            auto backend = make_backend(backend_name, 1);
            Plan plan(model, *backend, 1);
            SampleResult r;
            for (int64_t i = 0; i < std::min<int64_t>(n, 20); ++i)  // warm-up
                plan.run_early(data.images.data() + i * image_floats, 1, thresholds.data(), &r);
            std::vector<double> ms;
            std::vector<int> histogram(K, 0);
            double macs = 0;
            for (int64_t i = 0; i < n; ++i) {
                const auto t0 = std::chrono::steady_clock::now();
                plan.run_early(data.images.data() + i * image_floats, 1, thresholds.data(), &r);
                ms.push_back(bench::seconds_since(t0) * 1e3);
                ++histogram[r.exit];
                macs += double(plan.macs_to_exit()[r.exit]);
            }
            const Stats s = stats_of(ms);
            std::string hist;
            for (int h : histogram) hist += (hist.empty() ? "" : ", ") + std::to_string(h);
            std::printf(
                "%-9s %-7s early exit q %.2f, %lld test images, 1 thread: mean %.3f ms  median %.3f ms  "
                "p99 %.3f ms  exits [%s]  work %.1f %% of full depth\n",
                arch.c_str(), backend_name.c_str(), q, (long long)n, s.mean, s.median, s.p99, hist.c_str(),
                100 * macs / n / double(plan.macs_to_exit().back()));
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 300;
    std::string shared = "../shared", models = "resnet56,mobilenet,vgg16", backends = "native", raw_path, data_dir,
                thread_counts = "1,2";
    double q = -1;
    int images = 1000;
    CLI::App app{"bench_exits: per-exit latency, separability and throughput of each backend"};
    app.add_option("--reps", reps, "timed runs per exit")->check(CLI::Range(1, 1000000));
    app.add_option("--shared", shared, "the shared folder (models, data)");
    app.add_option("--models", models, "comma-separated: resnet56, mobilenet, vgg16");
    app.add_option("--backends", backends, "comma-separated: native, onednn, ...");
    app.add_option("--raw", raw_path, "write every batch-1 time here, as CSV");
    app.add_option("--q", q, "early exit at this quantile threshold over test images instead")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--images", images, "test images for --q")->check(CLI::Range(1, 10000000));
    app.add_option("--data", data_dir, "CIFAR-10 folder for --q (default SHARED/data/cifar10)");
    app.add_option("--threads", thread_counts, "comma-separated thread counts");
    CLI11_PARSE(app, argc, argv);
    if (data_dir.empty()) data_dir = shared + "/data/cifar10";
    try {
        CPU_ZERO(&g_inherited);
        sched_getaffinity(0, sizeof g_inherited, &g_inherited);
        pin_to_first_inherited_cpu();
        std::ofstream raw;
        if (!raw_path.empty()) {
            raw.open(raw_path);
            if (!raw) throw Error("--raw " + raw_path + ": cannot be written");
            raw << "model,backend,threads,exit,ms\n";
        }
        const double peak = bench::fma_peak_gflops();
        std::printf("FMA peak, one core, %s FMAs: %.1f GFLOP/s\n\n", bench::peak_isa_name(), peak);
        if (q >= 0) return early_exit_table(split(models), split(backends), shared, data_dir, float(q), images);
        std::printf("%-9s %-7s %2s %4s %10s %10s %7s %8s %8s %10s %7s\n", "model", "backend", "th", "exit", "median ms",
                    "p99 ms", "CV %", "floor CV", "sep sd", "% of peak", "step %");
        for (const auto& arch : split(models)) {
            Model model = load_arch(arch, shared);
            const int K = model.num_exits();
            Tensor image(Shape{1, 3, 32, 32});
            for (int64_t i = 0; i < image.numel(); ++i) image[i] = float((i * 7919) % 1000) / 1000.0f;
            for (const auto& backend_name : split(backends)) {
                for (const auto& thread_count : split(thread_counts)) {
                    const int threads = std::atoi(thread_count.c_str());
                    // One thread runs pinned; more get every inherited CPU back before their pool
                    // starts (its workers inherit the affinity: pinned, `--threads 2` ran both on
                    // one core at 254 images/s against one thread's 586).
                    if (threads == 1)
                        pin_to_first_inherited_cpu();
                    else
                        sched_setaffinity(0, sizeof g_inherited, &g_inherited);
                    auto backend = make_backend(backend_name, threads);
                    Plan plan(model, *backend, 1);
                    // Exits are timed in turn, each beside a compute-only job of its length on one
                    // thread, so that a burst of the machine's noise falls on all exits and their
                    // floor alike instead of on whichever was being timed.
                    std::vector<std::vector<float>> thresholds(K, std::vector<float>(K, 2.0f));
                    for (int k = 0; k < K; ++k) thresholds[k][k] = 0.0f;  // exit k fires, none before
                    SampleResult r;
                    auto time_exit = [&](int k) {
                        const auto t0 = std::chrono::steady_clock::now();
                        plan.run_early(image.data(), 1, thresholds[k].data(), &r);
                        return bench::seconds_since(t0) * 1e3;
                    };
                    std::vector<double> pilot(K);  // warm-up; its medians size the floor jobs
                    for (int k = 0; k < K; ++k) {
                        std::vector<double> ms;
                        for (int i = 0; i < std::max(reps / 10, 1); ++i) ms.push_back(time_exit(k));
                        pilot[k] = stats_of(ms).median;
                    }
                    std::vector<std::vector<double>> exit_ms(K), floor_ms(K);
                    for (int i = 0; i < reps; ++i)
                        for (int j = 0; j < K; ++j) {
                            const int k = (i + j) % K;  // each exit follows each other in turn
                            exit_ms[k].push_back(time_exit(k));
                            if (threads == 1) floor_ms[k].push_back(bench::compute_only_ms(pilot[k], peak));
                        }
                    std::vector<Stats> per_exit;
                    std::vector<double> floor_cv(K, NAN);  // one thread only
                    for (int k = 0; k < K; ++k) {
                        per_exit.push_back(stats_of(exit_ms[k]));
                        for (double t : exit_ms[k])
                            raw << arch << ',' << backend_name << ',' << threads << ',' << k << ',' << t << '\n';
                        if (threads != 1) continue;
                        const Stats f = stats_of(floor_ms[k]);
                        floor_cv[k] = 100 * f.sd / f.mean;
                    }
                    for (int k = 0; k < K; ++k) {
                        const Stats& s = per_exit[k];
                        double sep =
                            k + 1 < K ? (per_exit[k + 1].median - s.median) / std::max(s.sd, per_exit[k + 1].sd) : NAN;
                        double flops = 2.0 * plan.macs_to_exit()[k];
                        double frac = flops / (s.median * 1e-3) * 1e-9 / (peak * threads) * 100;
                        const double step_flops = flops - (k ? 2.0 * plan.macs_to_exit()[k - 1] : 0.0);
                        const double step_ms = s.median - (k ? per_exit[k - 1].median : 0.0);
                        const double step = step_flops / (step_ms * 1e-3) * 1e-9 / (peak * threads) * 100;
                        std::printf("%-9s %-7s %2d %4d %10.3f %10.3f %7.2f %8.2f %8.1f %10.1f %7.1f\n", arch.c_str(),
                                    backend_name.c_str(), threads, k, s.median, s.p99, 100 * s.sd / s.mean, floor_cv[k],
                                    sep, frac, step);
                    }
                    // Batch 128, all exits.
                    const int batch = 128;
                    Plan big(model, *backend, batch);
                    Tensor x(Shape{batch, 3, 32, 32}, 0.5f);
                    big.run_all(x.data(), batch);
                    std::vector<double> s;
                    for (int i = 0; i < 5; ++i) {
                        const auto t0 = std::chrono::steady_clock::now();
                        big.run_all(x.data(), batch);
                        s.push_back(bench::seconds_since(t0));
                    }
                    double med = stats_of(s).median;
                    double frac = 2.0 * big.macs_to_exit().back() * batch / med * 1e-9 / (peak * threads) * 100;
                    std::printf("%-9s %-7s %2d  b128 %9.0f img/s (median of 5), %.1f %% of %d-core peak\n\n",
                                arch.c_str(), backend_name.c_str(), threads, batch / med, frac, threads);
                }
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_exits: %s\n", e.what());
        return 1;
    }
    return 0;
}
