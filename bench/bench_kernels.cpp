// Every candidate kernel of each ResNet-56 convolution shape, timed as the plan-time tuner times them
// (native_conv_tuner.h: interleaved rounds, synthetic data) but with more rounds: least and median
// time per run, and the direct-convolution FLOP rate of the least as a percentage of the measured
// one-core FMA peak (Winograd kernels can pass 100 %). "*" marks what the tuner's rule picks from these
// times. Shows what AVX-512 and each algorithm gain per layer on this CPU, in one run.
// usage: bench_kernels [--batch 1] [--threads 1] [--rounds 25]
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_args.h"
#include "fma_peak.h"
#include "pin_cpu.h"
#include "native/native_conv_tuner.h"
#include "native/native_threads.h"

using namespace engine;
using namespace engine::native;

namespace {

struct Layer {
    const char* what;
    int64_t C, H, K, stride;
    bool residual;
};

Attrs conv3x3(int64_t stride, bool residual) {
    Attrs a;
    a.kernel[0] = a.kernel[1] = 3;
    a.stride[0] = a.stride[1] = stride;
    for (auto& p : a.pad) p = 1;
    a.fused_relu = true;
    a.fused_residual = residual;
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    bench::BenchArgs args{1, 1, 25};
    if (const int status = bench::parse_bench_args(argc, argv, "bench_kernels: each layer's kernel candidates", args);
        status >= 0)
        return status;
    const int batch = int(args.batch), threads = args.threads, rounds = args.rounds;
    if (threads == 1) bench::pin_to_first_cpu();
    threads_prepare(threads);
    const Isa isa = isa_of_this_cpu();
    const double peak = bench::fma_peak_gflops();
    std::printf("CPU: %s; kernels up to %s; batch %d, %d thread(s); FMA peak, one core, %s FMAs: %.1f GFLOP/s\n",
                cpu_model().c_str(), isa_name(isa), batch, threads, bench::peak_isa_name(), peak);
    const Layer layers[] = {
        {"stage 1 block", 16, 32, 16, 1, true},          {"stage 2 block", 32, 16, 32, 1, true},
        {"stage 3 block", 64, 8, 64, 1, true},           {"stage 1->2 (stride 2)", 16, 32, 32, 2, false},
        {"stage 2->3 (stride 2)", 32, 16, 64, 2, false}, {"first conv", 3, 32, 16, 1, false}};
    std::printf("%-22s %-26s %10s %10s %9s\n", "layer", "kernel", "least ms", "median ms", "% peak");
    for (const Layer& l : layers) {
        const Attrs a = conv3x3(l.stride, l.residual);
        const Shape x{batch, l.C, l.H, l.H}, w{l.K, l.C, 3, 3}, y{batch, l.K, l.H / l.stride, l.H / l.stride};
        const auto candidates = conv_kernel_candidates(a, x, w, y, isa);
        auto times = conv_kernel_times(candidates, a, x, w, y, threads, rounds);
        std::vector<double> least;
        for (auto& t : times) {
            std::sort(t.begin(), t.end());
            least.push_back(t.front());
        }
        size_t pick = 0;
        for (size_t i = 1; i < least.size(); ++i)
            if (least[i] < least[pick] && least[i] < 0.97 * least[0]) pick = i;
        const double flops = 2.0 * double(y.numel()) * double(w[1] * 9);
        for (size_t i = 0; i < candidates.size(); ++i)
            std::printf("%-22s %-26s %10.4f %10.4f %9.1f %s\n", i ? "" : l.what, conv_kernel_name(candidates[i]),
                        least[i] * 1e3, times[i][times[i].size() / 2] * 1e3,
                        flops / least[i] * 1e-9 / (peak * threads) * 100, i == pick ? "*" : "");
    }
    return 0;
}
