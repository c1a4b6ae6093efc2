// The cuda backend on a GPU: every op case forward and backward against the reference loops,
// inference plans with fused epilogues, early exit decided inside a CUDA graph against Plan::run_early,
// the shared models' per-exit logits against PyTorch's, and the early-exit decisions on the CIFAR-10
// test set against the native backend. Without a device (or a build without CUDA) each case prints one
// SKIPPED line and passes. ENGINE_SHARED_DIR and ENGINE_CIFAR_DIR in the environment override where the
// shared models and the test images are looked for (bench/gpu_check.sh points them into the repo).
#include "engine/config.h"
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "engine/error.h"
#include "op_cases.h"

#ifdef ENGINE_WITH_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/cuda_graph_exits.h"
#include "engine/dataset.h"
#include "engine/model_zoo.h"
#include "tiny_model.h"
#ifdef ENGINE_WITH_ONNX
#include "engine/onnx_import.h"
#include "engine/safetensors.h"
#endif

using namespace engine;

namespace {

std::unique_ptr<Backend> cuda_or_skip(const char* what) {
    try {
        return make_backend("cuda");
    } catch (const Error& e) {
        test::skip(std::string("cuda ") + what, std::string("no CUDA device: ") + e.what());
        return nullptr;
    }
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}
std::string shared_dir() { return env_or("ENGINE_SHARED_DIR", test::shared_dir()); }

// Threshold at the median exit-0 probability of a batch, so both branches of the decision run.
float median_exit0_prob(Plan& plan, const float* x, int n) {
    plan.run_all(x, n);
    const TensorView z = plan.exit_logits(0);
    const int64_t classes = z.numel() / n;
    std::vector<float> p;
    for (int r = 0; r < n; ++r) p.push_back(top_class(z.data + r * classes, classes).prob);
    std::nth_element(p.begin(), p.begin() + n / 2, p.end());
    return p[n / 2];
}

// Early-exit results agree, except where a probability sits within `margin` of its threshold.
int disagreements(const std::vector<SampleResult>& a, const std::vector<SampleResult>& b, const std::vector<float>& q,
                  float margin, int* borderline) {
    int hard = 0;
    *borderline = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].exit == b[i].exit && a[i].cls == b[i].cls) continue;
        const int k = std::min(a[i].exit, b[i].exit);
        const bool near =
            k < int(q.size()) - 1 && (std::abs(a[i].prob - q[k]) < margin || std::abs(b[i].prob - q[k]) < margin);
        (near ? *borderline : hard)++;
    }
    return hard;
}

}  // namespace

TEST_CASE("cuda backend matches the reference loops for every op, forward and backward") {
    auto cuda = cuda_or_skip("op cases");
    if (!cuda) return;
    auto ref = make_backend("ref");
    auto cases = test::all_op_cases();
    for (const auto& c : test::large_elementwise_cases()) cases.push_back(c);
    for (const auto& c : cases) {
        CAPTURE(c.label);
        test::check_same_result(test::run_op_case(c, *ref, 11), test::run_op_case(c, *cuda, 11), 1e-5);
    }
    // Asymmetric padding: cuDNN pads both sides alike, so the backend pads explicitly.
    auto asym = test::conv_attrs(3, 2, 0);
    asym.pad[2] = asym.pad[3] = 1;
    const test::OpCase c{"conv_asymmetric_pad", Op::Conv, asym, {Shape{2, 3, 8, 8}, Shape{4, 3, 3, 3}, Shape{4}}};
    test::check_same_result(test::run_op_case(c, *ref, 11), test::run_op_case(c, *cuda, 11), 1e-5);
}

TEST_CASE("cuda inference plans (fused epilogues) match the native backend on the model zoo") {
    auto cuda = cuda_or_skip("model zoo");
    if (!cuda) return;
    auto native = make_backend("native");
    for (const char* arch : {"tiny", "small", "resnet56"}) {
        CAPTURE(arch);
        const Model m = build_model(arch, 10, 32, 7);
        const int n = 5;
        const Tensor x = test::random_tensor(Shape{n, 3, 32, 32}, 3, 0, 1);
        Plan a(m, *native, n), b(m, *cuda, n);
        a.run_all(x.data(), n);
        b.run_all(x.data(), n);
        for (int k = 0; k < m.num_exits(); ++k) {
            const TensorView za = a.exit_logits(k), zb = b.exit_logits(k);
            CHECK(relative_error(zb.data, za.data, za.numel()) <= 1e-4);
        }
    }
}

// A plan whose early exit is decided on the host (ENGINE_CUDA_GRAPH_EXIT=0 while it is made).
std::unique_ptr<Plan> host_decided_plan(const Model& m, Backend& b, int batch) {
    setenv("ENGINE_CUDA_GRAPH_EXIT", "0", 1);
    auto p = std::make_unique<Plan>(m, b, batch);
    unsetenv("ENGINE_CUDA_GRAPH_EXIT");
    return p;
}

TEST_CASE("early exit inside a CUDA graph agrees with the host's decisions") {
    auto backend = cuda_or_skip("device early exit");
    if (!backend) return;
    auto& cuda = static_cast<cuda::CudaBackend&>(*backend);
    const Model m = build_model("resnet56", 10, 32, 7);
    for (int batch : {1, 7, 64}) {
        CAPTURE(batch);
        const int samples = batch == 1 ? 16 : batch;
        const Tensor x = test::random_tensor(Shape{samples, 3, 32, 32}, 9, 0, 1);
        auto host = host_decided_plan(m, cuda, batch);
        Plan plan(m, cuda, batch);  // Plan::run_early through the backend's graph
        const float q0 = median_exit0_prob(*host, x.data(), batch);
        std::vector<float> q(m.num_exits(), q0);
        cuda::DeviceEarlyExit graph(plan, cuda, q);  // built here, so that a failure is an error, not a fallback
        std::vector<SampleResult> want(samples), got(samples), via_plan(samples);
        for (int off = 0; off < samples; off += batch) {
            host->run_early(x.data() + int64_t(off) * 3 * 32 * 32, batch, q.data(), want.data() + off);
            graph.run(x.data() + int64_t(off) * 3 * 32 * 32, batch, got.data() + off);
            plan.run_early(x.data() + int64_t(off) * 3 * 32 * 32, batch, q.data(), via_plan.data() + off);
        }
        int borderline = 0;
        CHECK(disagreements(want, got, q, 1e-5f, &borderline) == 0);
        CHECK(disagreements(want, via_plan, q, 1e-5f, &borderline) == 0);
        int early = 0;
        for (int i = 0; i < samples; ++i) {
            CHECK(got[i].exit >= 0);
            early += got[i].exit < m.num_exits() - 1;
        }
        std::printf("device early exit, batch %d: %d of %d samples left before the last exit\n", batch, early, samples);
    }
}

#ifdef ENGINE_WITH_ONNX
TEST_CASE("shared models on cuda reproduce PyTorch's per-exit logits") {
    auto cuda = cuda_or_skip("shared models");
    if (!cuda) return;
    const std::string dir = shared_dir() + "/models/";
    int seen = 0;
    for (const char* name : {"resnet56_s1", "mobilenet_s1", "resnet56_s3"}) {
        if (!std::filesystem::exists(dir + name + ".onnx") ||
            !std::filesystem::exists(dir + name + ".reference.safetensors")) {
            std::printf("SKIPPED shared model %s: not in %s\n", name, dir.c_str());
            continue;
        }
        ++seen;
        const Model m = import_onnx(dir + name + ".onnx");
        const auto ref = read_safetensors(dir + name + ".reference.safetensors");
        const Tensor& images = ref.at("images");
        const int count = int(images.shape()[0]), batch = 64;
        const int64_t per = images.numel() / count;
        Plan plan(m, *cuda, batch);
        std::vector<std::vector<float>> got(m.num_exits());
        for (int off = 0; off < count; off += batch) {
            const int n = std::min(batch, count - off);
            plan.run_all(images.data() + off * per, n);
            for (int k = 0; k < m.num_exits(); ++k) {
                const TensorView v = plan.exit_logits(k);
                got[k].insert(got[k].end(), v.data, v.data + v.numel());
            }
        }
        std::printf("%-13s cuda %3d images, relative error per exit:", name, count);
        for (int k = 0; k < m.num_exits(); ++k) {
            const Tensor& want = ref.at("exit" + std::to_string(k));
            const double e = relative_error(got[k].data(), want.data(), want.numel());
            std::printf(" %.2e", e);
            CHECK_MESSAGE(e <= 1e-4, name << " exit " << k << " relative error " << e);
        }
        std::printf("\n");
    }
    if (!seen) std::printf("SKIPPED shared models: none under %s\n", dir.c_str());
}

TEST_CASE("early-exit decisions on the CIFAR-10 test set: cuda (graph, batch 1 and 256) against native") {
    auto backend = cuda_or_skip("CIFAR-10 decisions");
    if (!backend) return;
    auto& cuda = static_cast<cuda::CudaBackend&>(*backend);
    const std::string model_path = shared_dir() + "/models/resnet56_s1.onnx";
    const std::string data = env_or("ENGINE_CIFAR_DIR", shared_dir() + "/data/cifar10");
    if (!std::filesystem::exists(model_path) || !std::filesystem::exists(data)) {
        std::printf("SKIPPED CIFAR-10 decisions: %s or %s missing\n", model_path.c_str(), data.c_str());
        return;
    }
    const Model m = load_model(model_path);
    const Dataset d = load_cifar(data, false, 10);
    const int count = int(d.size()), per = 3 * 32 * 32, batch = 256;
    const std::vector<float> q = m.thresholds;
    auto native = make_backend("native");
    std::vector<SampleResult> want(count), got_n(count), got_1(count);
    {
        Plan p(m, *native, batch);
        for (int off = 0; off < count; off += batch)
            p.run_early(d.images.data() + int64_t(off) * per, std::min(batch, count - off), q.data(),
                        want.data() + off);
    }
    {  // Plan::run_early as the tools call it: through the backend's CUDA graph
        Plan p(m, cuda, batch);
        for (int off = 0; off < count; off += batch)
            p.run_early(d.images.data() + int64_t(off) * per, std::min(batch, count - off), q.data(),
                        got_n.data() + off);
    }
    {
        Plan p(m, cuda, 1);
        for (int i = 0; i < count; ++i) p.run_early(d.images.data() + int64_t(i) * per, 1, q.data(), got_1.data() + i);
    }
    int border_n = 0, border_1 = 0;
    const int hard_n = disagreements(want, got_n, q, 1e-4f, &border_n);
    const int hard_1 = disagreements(want, got_1, q, 1e-4f, &border_1);
    int same_n = 0, same_1 = 0;
    for (int i = 0; i < count; ++i) {
        same_n += want[i].exit == got_n[i].exit && want[i].cls == got_n[i].cls;
        same_1 += want[i].exit == got_1[i].exit && want[i].cls == got_1[i].cls;
    }
    std::printf(
        "CIFAR-10 decisions vs native, %d images: batch 256 graph %d identical (%d within 1e-4 of q, %d other); "
        "batch 1 graph %d identical (%d within 1e-4 of q, %d other)\n",
        count, same_n, border_n, hard_n, same_1, border_1, hard_1);
    CHECK(hard_n == 0);
    CHECK(hard_1 == 0);
}
#endif

TEST_CASE("a cuda training step: gradients of a whole model agree with the reference") {
    auto cuda = cuda_or_skip("training step");
    if (!cuda) return;
    auto ref = make_backend("ref");
    Model a = test::tiny_model(2, 8, 10), b = test::tiny_model(2, 8, 10);
    const Tensor x = test::random_tensor(Shape{4, 3, 8, 8}, 4, 0, 1);
    Plan pa(a, *ref, 4, true), pb(b, *cuda, 4, true);
    pa.run_all(x.data(), 4, true, 3);
    pb.run_all(x.data(), 4, true, 3);
    std::vector<Tensor> seeds;
    std::vector<const float*> sp;
    for (int k = 0; k < a.num_exits(); ++k) seeds.push_back(test::random_tensor(pa.exit_logits(k).shape, 20 + k));
    for (auto& s : seeds) sp.push_back(s.data());
    pa.backward(sp.data(), true, true, 3);
    pb.backward(sp.data(), true, true, 3);
    CHECK(relative_error(pb.input_grad().data, pa.input_grad().data, pa.input_grad().numel()) <= 1e-4);
    for (size_t i = 0; i < a.graph.nodes.size(); ++i) {
        if (!a.graph.nodes[i].trainable) continue;
        CAPTURE(a.graph.nodes[i].name);
        const TensorView ga = pa.param_grad(int(i)), gb = pb.param_grad(int(i));
        CHECK(relative_error(gb.data, ga.data, ga.numel()) <= 1e-4);
    }
    for (size_t i = 0; i < a.graph.nodes.size(); ++i)  // BatchNorm running statistics came back
        if (a.graph.nodes[i].op == Op::Constant)
            CHECK(relative_error(b.graph.nodes[i].value.data(), a.graph.nodes[i].value.data(),
                                 a.graph.nodes[i].value.numel()) <= 1e-5);
}

#else
TEST_CASE("cuda backend") { test::skip("cuda backend", "built without ENGINE_WITH_CUDA (needs nvcc and cuDNN)"); }
#endif
