// Training throughput of the engine: images/s of full training steps (augmented batch, forward in
// training mode, SDN joint loss over every exit, backward, SGD step) for the SDN archs at one
// batch size, on synthetic CIFAR-sized data. The PyTorch peer is bench_train.py.
//   bench_train [--batch 128] [--iters 3] [--threads N] [--backend native] [arch ...]
#include <omp.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/train/trainer.h"
#include "engine/model_zoo.h"

using namespace engine;

int main(int argc, char** argv) {
    int batch = 128, iters = 3, threads = 0;
    std::string backend = default_backend_name();
    std::vector<std::string> archs;
    CLI::App app{"bench_train: training throughput of the engine on synthetic CIFAR-sized data"};
    app.add_option("--batch", batch, "images per step")->check(CLI::Range(1, 1 << 20));
    app.add_option("--iters", iters, "timed steps, after one warm-up step")->check(CLI::Range(1, 1000000));
    app.add_option("--threads", threads, "compute threads (0: one per core)")->check(CLI::Range(0, 1024));
    app.add_option("--backend", backend, "native, onednn, ...");
    app.add_option("arch", archs, "architectures (default: small resnet56 mobilenet)");
    CLI11_PARSE(app, argc, argv);
    if (archs.empty()) archs = {"small", "resnet56", "mobilenet"};
    if (threads > 0) omp_set_num_threads(threads);
    try {
        // (warm-up + iters) batches of random images and labels, 1 epoch, no evaluation.
        Dataset data;
        const int n = batch * (iters + 1);
        data.images = Tensor(Shape{n, 3, 32, 32});
        data.num_classes = 10;
        std::mt19937 rng(1);
        for (auto& v : data.images.values()) v = float(rng() % 256) / 255.0f;
        for (int i = 0; i < n; ++i) data.labels.push_back(int(rng() % 10));
        std::printf("engine training, batch %d, %d threads, backend %s, SDN loss, SGD\n", batch, omp_get_max_threads(),
                    backend.c_str());
        std::printf("%-10s %10s %12s %12s\n", "arch", "params", "s/step", "images/s");
        for (const auto& arch : archs) {
            Model model = build_model(arch, 10, 32, 1);
            train::TrainConfig c;
            c.mode = "sdn";
            c.batch = batch;
            c.backend = backend;
            c.threads = threads;  // the backend's kernels: 0 is one per core
            c.val_limit = 0;
            train::Trainer trainer(model, data, nullptr, c);
            std::vector<double> stamps;
            trainer.train_epoch([&](int64_t, int64_t, double) {
                stamps.push_back(
                    std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
            });
            const double per_step = (stamps.back() - stamps.front()) / iters;  // first step is the warm-up
            std::printf("%-10s %10lld %12.3f %12.1f\n", arch.c_str(), (long long)count_parameters(model.graph),
                        per_step, batch / per_step);
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_train: %s\n", e.what());
        return 1;
    }
    return 0;
}
