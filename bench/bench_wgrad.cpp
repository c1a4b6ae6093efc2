// The weight gradient of each stride-1 ResNet-56 convolution shape on one thread: the direct kernel
// (conv3x3_weight_grad) against Winograd F(4x4) (winograd_weight_grad), interleaved rounds on the
// same synthetic data, with the largest relative difference between them. The rate is the direct
// kernel's FLOP count over the time, as a percentage of the measured one-core FMA peak.
// usage: bench_wgrad [--batch 32] [--rounds 15]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_args.h"
#include "engine/aligned_vector.h"
#include "fma_peak.h"
#include "native/native_conv3x3.h"
#include "native/native_isa.h"
#include "native/native_winograd_wgrad.h"

using namespace engine;
using namespace engine::native;

int main(int argc, char** argv) {
    bench::BenchArgs args{32, 1, 15};
    if (const int status = bench::parse_bench_args(argc, argv, "bench_wgrad: direct and Winograd weight gradients",
                                                   args, /*with_threads=*/false);
        status >= 0)
        return status;
    const int64_t batch = args.batch;
    const int rounds = args.rounds;
    const double peak = bench::fma_peak_gflops();
    const Isa isa = isa_of_this_cpu();
    std::printf("weight gradient, batch %lld, one thread, %s, FMA peak (%s FMAs) %.1f GFLOP/s\n", (long long)batch,
                isa_name(isa), bench::peak_isa_name(), peak);
    std::printf("%-14s %12s %12s %10s %10s %10s\n", "shape", "direct ms", "winograd ms", "ratio", "% peak", "max diff");
    for (int64_t side : {32, 16, 8}) {
        const int64_t C = 16 * 32 / side;
        const Shape x{batch, C, side, side}, w{C, C, 3, 3};
        std::mt19937 rng(1);
        std::normal_distribution<float> normal;
        AlignedVector<float> xs(x.numel()), gys(x.numel());
        for (auto& v : xs) v = std::max(0.0f, normal(rng));  // post-ReLU activations
        for (auto& v : gys) v = normal(rng) * 1e-3f;
        AlignedVector<float> scratch(
            std::max(conv3x3_wgrad_scratch_per_thread(x), winograd_wgrad_scratch_per_thread(x, w)));
        std::vector<float> direct(w.numel()), wino(w.numel());
        const TensorView xv{xs.data(), x}, gv{gys.data(), x};
        std::vector<double> td, tw;
        for (int r = 0; r < rounds; ++r) {
            std::fill(direct.begin(), direct.end(), 0.0f);
            std::fill(wino.begin(), wino.end(), 0.0f);
            auto t0 = std::chrono::steady_clock::now();
            conv3x3_weight_grad(xv, gv, direct.data(), 0, batch, scratch.data());
            td.push_back(bench::seconds_since(t0));
            t0 = std::chrono::steady_clock::now();
            winograd_weight_grad(xv, gv, wino.data(), 0, batch, scratch.data(), isa);
            tw.push_back(bench::seconds_since(t0));
        }
        double scale = 0, diff = 0;
        for (int64_t i = 0; i < w.numel(); ++i) {
            scale = std::max(scale, double(std::fabs(direct[i])));
            diff = std::max(diff, double(std::fabs(direct[i] - wino[i])));
        }
        std::sort(td.begin(), td.end());
        std::sort(tw.begin(), tw.end());
        const double md = td[td.size() / 2], mw = tw[tw.size() / 2];
        const double flops = 2.0 * batch * C * C * 9 * side * side;
        char shape[32];
        std::snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)C, (long long)side, (long long)side);
        std::printf("%-14s %12.3f %12.3f %10.2f %5.0f/%-4.0f %10.1e\n", shape, md * 1e3, mw * 1e3, mw / md,
                    100 * flops / md / 1e9 / peak, 100 * flops / mw / 1e9 / peak, diff / scale);
    }
    return 0;
}
