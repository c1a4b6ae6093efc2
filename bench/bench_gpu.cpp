// The cuda backend on one GPU, as one table: per-exit batch-1 latency with the exit decided inside a
// CUDA graph (median, p99; device time from the GPU's global timer beside the host's wall time) and
// with the exit decided on the host between per-op launches (Plan::run_early), batch-N throughput with
// on-device early exit and at full depth, and training images/s (forward, SDN loss over every exit,
// backward, Nesterov SGD on the host). Prints the GPU, cuDNN version and math mode.
// usage: bench_gpu MODEL --data CIFAR_DIR [--reps 400] [--batch 256] [--train-batch 128] [--train-steps 20]
//                  [--limit N]
#include "engine/config.h"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"

#ifdef ENGINE_WITH_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/cuda_graph_exits.h"
#include "engine/dataset.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "engine/train/loss.h"
#include "engine/train/optimizer.h"

using namespace engine;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Stats {
    double median = 0, p99 = 0;
};
Stats stats_of(std::vector<double> v) {
    if (v.empty()) return {};
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v[std::min(v.size() - 1, size_t(0.99 * v.size()))]};
}

int run(int argc, char** argv) {
    std::string model_path, data;
    int reps = 400, batch = 256, train_batch = 128, train_steps = 20, limit = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) fail("bench_gpu: " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--data")
            data = next();
        else if (a == "--reps")
            reps = std::stoi(next());
        else if (a == "--batch")
            batch = std::stoi(next());
        else if (a == "--train-batch")
            train_batch = std::stoi(next());
        else if (a == "--train-steps")
            train_steps = std::stoi(next());
        else if (a == "--limit")
            limit = std::stoi(next());
        else if (model_path.empty())
            model_path = a;
        else
            fail("bench_gpu: unexpected argument '" + a + "'");
    }
    if (model_path.empty() || data.empty()) fail("usage: bench_gpu MODEL --data CIFAR_DIR [--reps N] ...");
    Model m = load_model(model_path);
    const Dataset d = load_cifar(data, false, 10, limit);
    const int count = int(d.size()), per = int(d.images.numel() / count), exits = m.num_exits();
    auto backend = make_backend("cuda");
    auto& cuda = static_cast<cuda::CudaBackend&>(*backend);
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    std::printf("bench_gpu: %s, %s, cuDNN %zu, %s, thresholds %.2f, %d test images\n", model_path.c_str(), prop.name,
                cudnnGetVersion(), cuda.tf32() ? "TF32 allowed" : "FP32 (no TF32)", m.thresholds[0], count);

    // Batch N with on-device early exit, over the whole test set; it also says which exit each image takes.
    // Each section reports its own failure and the next one still runs: one device session, one table.
    std::vector<SampleResult> res(count);
    double early_ips = -1, full_ips = -1;
    std::string early_err, full_err, train_err;
    {
        Plan plan(m, cuda, batch);
        try {
            cuda::DeviceEarlyExit graph(plan, cuda, m.thresholds);
            std::vector<double> rounds;
            for (int round = 0; round < 3; ++round) {
                const auto t0 = Clock::now();
                for (int off = 0; off < count; off += batch)
                    graph.run(d.images.data() + int64_t(off) * per, std::min(batch, count - off), res.data() + off);
                rounds.push_back(ms_since(t0));
            }
            early_ips = count / (stats_of(rounds).median / 1e3);
        } catch (const std::exception& e) {
            early_err = e.what();
            for (int off = 0; off < count; off += batch)  // the exits from Plan::run_early instead
                plan.run_early(d.images.data() + int64_t(off) * per, std::min(batch, count - off), m.thresholds.data(),
                               res.data() + off);
        }
        try {
            std::vector<double> rounds;
            for (int round = 0; round < 3; ++round) {
                const auto t0 = Clock::now();
                for (int off = 0; off < count; off += batch) {
                    plan.run_all(d.images.data() + int64_t(off) * per, std::min(batch, count - off));
                    plan.exit_logits(exits - 1);  // downloads, so the time includes the work
                }
                rounds.push_back(ms_since(t0));
            }
            full_ips = count / (stats_of(rounds).median / 1e3);
        } catch (const std::exception& e) {
            full_err = e.what();
        }
    }

    // Batch 1, per exit: images that leave there, cycled.
    std::vector<std::vector<int>> by_exit(exits);
    for (int i = 0; i < count; ++i)
        if (res[i].exit >= 0 && by_exit[res[i].exit].size() < 64) by_exit[res[i].exit].push_back(i);
    std::vector<int> taken(exits, 0);
    for (int i = 0; i < count; ++i) taken[std::max(0, res[i].exit)]++;
    Plan plan1(m, cuda, 1);
    setenv("ENGINE_CUDA_GRAPH_EXIT", "0", 1);  // this one decides on the host, between per-op launches
    Plan plan_host(m, cuda, 1);
    unsetenv("ENGINE_CUDA_GRAPH_EXIT");
    std::unique_ptr<cuda::DeviceEarlyExit> graph1;
    try {
        graph1 = std::make_unique<cuda::DeviceEarlyExit>(plan1, cuda, m.thresholds);
    } catch (const std::exception& e) {
        std::printf("batch-1 graph: failed: %s\n", e.what());
    }
    std::printf("\n%-5s %8s %10s | %-27s %12s | %-21s\n", "exit", "share", "M MACs", "graph: wall median / p99 ms",
                "device ms", "host-decided med/p99");
    for (int k = 0; k < exits; ++k) {
        if (by_exit[k].empty()) {
            std::printf("%-5d %7.1f%% %10.1f | (no test image leaves here)\n", k, 100.0 * taken[k] / count,
                        plan1.macs_to_exit()[k] / 1e6);
            continue;
        }
        std::vector<double> wall, dev, host;
        SampleResult r;
        if (graph1) {
            for (int i = 0; i < 20; ++i) graph1->run(d.images.data() + int64_t(by_exit[k][0]) * per, 1, &r);  // warm
            for (int i = 0; i < reps; ++i) {
                const int img = by_exit[k][i % by_exit[k].size()];
                const auto t0 = Clock::now();
                graph1->run(d.images.data() + int64_t(img) * per, 1, &r);
                wall.push_back(ms_since(t0));
                dev.push_back(r.ns / 1e6);
            }
        }
        for (int i = 0; i < std::max(20, reps / 4); ++i) {
            const int img = by_exit[k][i % by_exit[k].size()];
            const auto t0 = Clock::now();
            plan_host.run_early(d.images.data() + int64_t(img) * per, 1, m.thresholds.data(), &r);
            host.push_back(ms_since(t0));
        }
        const Stats w = stats_of(wall), dv = stats_of(dev), h = stats_of(host);
        std::printf("%-5d %7.1f%% %10.1f | %12.3f / %-12.3f %12.3f | %9.3f / %-9.3f\n", k, 100.0 * taken[k] / count,
                    plan1.macs_to_exit()[k] / 1e6, w.median, w.p99, dv.median, h.median, h.p99);
    }

    // Training: SDN loss over every exit, Nesterov SGD on the host (as engine_train's step).
    double train_ips = -1;
    try {
        Plan tp(m, cuda, train_batch, /*keep_all=*/true);
        std::vector<train::ParamRef> params;
        std::vector<int> param_nodes;
        for (size_t i = 0; i < m.graph.nodes.size(); ++i)
            if (m.graph.nodes[i].trainable) {
                Node& nd = m.graph.nodes[i];
                params.push_back({nd.name, nd.value.data(), nd.value.numel()});
                param_nodes.push_back(int(i));
            }
        train::OptimizerConfig oc;
        oc.weight_decay = 5e-4f;
        auto opt = train::make_optimizer(oc, params);
        const auto weights = train::sdn_exit_weights(exits, 0.5);
        std::vector<std::vector<float>> grads(exits);
        std::vector<const float*> seeds(exits), pg(params.size());
        std::vector<double> steps;
        for (int s = 0; s < train_steps + 2; ++s) {
            const int off = (s * train_batch) % std::max(1, count - train_batch);
            const auto t0 = Clock::now();
            tp.run_all(d.images.data() + int64_t(off) * per, train_batch, true, uint64_t(s));
            for (int k = 0; k < exits; ++k) {
                const TensorView z = tp.exit_logits(k);
                const int classes = int(z.numel() / train_batch);
                grads[k].resize(z.numel());
                train::softmax_cross_entropy(z.data, d.labels.data() + off, train_batch, classes, grads[k].data(),
                                             weights[k]);
                seeds[k] = grads[k].data();
            }
            tp.backward(seeds.data(), false, true, uint64_t(s));
            for (size_t p = 0; p < params.size(); ++p) pg[p] = tp.param_grad(param_nodes[p]).data;
            opt->step(params, pg, 0.01f);
            if (s >= 2) steps.push_back(ms_since(t0));
        }
        train_ips = train_batch / (stats_of(steps).median / 1e3);
    } catch (const std::exception& e) {
        train_err = e.what();
    }

    auto figure = [](double v, const std::string& err) {
        return err.empty() ? std::to_string(int64_t(v + 0.5)) + " images/s" : "failed: " + err;
    };
    std::printf("\nbatch %d, on-device early exit (CUDA graph, conditional nodes): %s\n", batch,
                figure(early_ips, early_err).c_str());
    std::printf("batch %d, full depth (per-op launches, every exit computed): %s\n", batch,
                figure(full_ips, full_err).c_str());
    std::printf("training, batch %d (SDN loss, SGD on the host, weights re-uploaded each step): %s\n", train_batch,
                figure(train_ips, train_err).c_str());
    const bool ok = early_err.empty() && full_err.empty() && train_err.empty() && graph1;
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu: %s\n", e.what());
        return 1;
    }
}
#else
int main() {
    std::fprintf(stderr, "bench_gpu: built without ENGINE_WITH_CUDA (needs nvcc and cuDNN at configure time)\n");
    return 1;
}
#endif
