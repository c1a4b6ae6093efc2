// BatchNorm in training mode (fused ReLU) on the three ResNet-56 stage shapes at batch 128: the
// native forward and backward kernels, median and p99 over interleaved rounds, and the bytes the
// forward moves at least (read x, write y) over its time. The backward runs twice a round: with the
// ReLU's mask from y (read gy, y, x, write gx), and from x with the forward's k and shift, as training
// runs it (read gy, x, write gx).
// usage: bench_batchnorm [--batch 128] [--threads 2] [--rounds 30]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_args.h"
#include "engine/aligned_vector.h"
#include "native/native_batchnorm.h"

using namespace engine;
using namespace engine::native;

namespace {

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    bench::BenchArgs args{128, 2, 30};
    if (const int status = bench::parse_bench_args(argc, argv, "bench_batchnorm: BatchNorm training kernels", args);
        status >= 0)
        return status;
    const int64_t batch = args.batch;
    const int threads = args.threads, rounds = args.rounds;
    std::printf("BatchNorm + ReLU, training, batch %lld, %d threads, %d rounds\n", (long long)batch, threads, rounds);
    std::printf("%-14s %9s %9s %7s %11s %11s %11s %11s %7s\n", "shape", "fwd ms", "fwd p99", "GB/s", "bwd y ms",
                "bwd y p99", "bwd x ms", "bwd x p99", "y / x");
    for (int64_t side : {32, 16, 8}) {
        const int64_t C = 16 * 32 / side;
        const Shape xs{batch, C, side, side}, cs{C};
        const int64_t n = xs.numel();
        AlignedVector<float> x(n), y(n), gy(n), gx(n), scale(C, 1.0f), bias(C, 0.1f), mean(C, 0.0f), var(C, 1.0f),
            gscale(C), gbias(C), k_shift(2 * C);
        std::mt19937 rng(1);
        std::normal_distribution<float> normal;
        for (auto* v : {&x, &gy})
            for (auto& e : *v) e = normal(rng);
        const TensorView in[5] = {{x.data(), xs}, {scale.data(), cs}, {bias.data(), cs}, {mean.data(), cs},
                                  {var.data(), cs}};
        TensorView gin[3] = {{gx.data(), xs}, {gscale.data(), cs}, {gbias.data(), cs}};
        Attrs a;
        a.fused_relu = true;
        std::vector<double> fwd, bwd_y, bwd_x;
        for (int r = 0; r < rounds; ++r) {
            double t = now_ms();
            batchnorm_train_forward(a, in, {y.data(), xs}, k_shift.data(), threads);
            fwd.push_back(now_ms() - t);
            for (const float* normalisation : {(const float*)nullptr, (const float*)k_shift.data()}) {
                t = now_ms();
                batchnorm_backward(a, in, {y.data(), xs}, {gy.data(), xs}, gin, /*gx_fresh=*/true,
                                   /*residual_fresh=*/false, /*training=*/true, normalisation, threads);
                (normalisation ? bwd_x : bwd_y).push_back(now_ms() - t);
            }
        }
        const double mb = double(n) * 4 / 1e6;
        char name[32];
        std::snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)C, (long long)side, (long long)side);
        const double f = quantile(fwd, 0.5), by = quantile(bwd_y, 0.5), bx = quantile(bwd_x, 0.5);
        std::printf("%-14s %9.3f %9.3f %7.1f %11.3f %11.3f %11.3f %11.3f %7.2f\n", name, f, quantile(fwd, 0.99),
                    2 * mb / f, by, quantile(bwd_y, 0.99), bx, quantile(bwd_x, 0.99), by / bx);
    }
    return 0;
}
