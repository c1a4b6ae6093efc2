// The oneDNN backend against the reference loops for every op (forward and backward), against
// PyTorch's logits on the shared models, and against the native backend's early exits.
#include "engine/config.h"
#include <doctest/doctest.h>

#include "test_util.h"

#include <cstdio>

#ifdef ENGINE_WITH_ONEDNN
#include <set>

#include "engine/error.h"
#include "onednn/onednn_backend.h"
#include "op_cases.h"
#ifdef ENGINE_WITH_ONNX
#include "engine/onnx_import.h"
#include "engine/safetensors.h"
#endif

using namespace engine;

TEST_CASE("onednn backend matches the reference loops for every op, forward and backward") {
    auto ref = make_backend("ref");
    auto dnn = make_backend("onednn", 1);
    CHECK(dnn->name() == "onednn");
    // Cases oneDNN must run itself; the rest (broadcasts, alpha/beta Gemm, ...) may fall back.
    const std::set<std::string> on_onednn = {"conv3x3",
                                             "conv_stride2_nobias",
                                             "conv1x1_stride2",
                                             "conv_depthwise",
                                             "conv_depthwise_s2",
                                             "conv_groups2_dil2",
                                             "batchnorm",
                                             "batchnorm_train",
                                             "relu",
                                             "add_same",
                                             "maxpool",
                                             "maxpool_pad_s1",
                                             "avgpool",
                                             "avgpool_pad_exclude",
                                             "avgpool_pad_include",
                                             "gemm_transb_bias"};
    int accelerated_count = 0;
    for (const auto& c : test::all_op_cases()) {
        CAPTURE(c.label);
        auto a = test::run_op_case(c, *ref, 11);
        bool accelerated = false;  // the op's forward ran on a oneDNN primitive
        auto b = test::run_op_case(c, *dnn, 11, [&](const Model& m, int n) {
            accelerated = static_cast<onednn::OnednnBackend&>(*dnn).accelerates(m.graph.nodes[m.graph.outputs[0]], n);
        });
        test::check_same_result(a, b, 1e-4);
        if (on_onednn.count(c.label)) {
            CHECK_MESSAGE(accelerated, c.label << " fell back to the reference code");
            accelerated_count += accelerated;
        }
    }
    CHECK(accelerated_count == int(on_onednn.size()));
}

TEST_CASE("onednn batch-norm training updates the running statistics like the reference") {
    for (const auto& c : test::all_op_cases()) {
        if (c.label != "batchnorm_train") continue;
        Model ma = test::one_node_model(c, 5), mb = test::one_node_model(c, 5), initial = test::one_node_model(c, 5);
        Tensor x = test::case_input(c, 5);
        const int n = int(c.shapes[0][0]);
        auto ref = make_backend("ref");
        auto dnn = make_backend("onednn", 1);
        Plan pa(ma, *ref, n, true), pb(mb, *dnn, n, true);
        for (int step = 0; step < 3; ++step) {
            pa.run_all(x.data(), n, true, 1);
            pb.run_all(x.data(), n, true, 1);
        }
        for (int i : {3, 4}) {  // running mean and variance
            CAPTURE(i);
            const Tensor& want = ma.graph.nodes[i].value;
            const Tensor& got = mb.graph.nodes[i].value;
            CHECK(relative_error(got.data(), want.data(), want.numel()) <= 1e-5);
            CHECK(relative_error(want.data(), initial.graph.nodes[i].value.data(), want.numel()) > 1e-3);  // it moved
        }
    }
}

TEST_CASE("onednn backend gives the same results at every batch size of a plan") {
    // Early exit runs a plan at smaller batches than it was prepared for: primitives made on
    // first use at those sizes must agree with the planned ones row by row.
    test::OpCase c{"conv", Op::Conv, test::conv_attrs(3, 1, 1), {Shape{8, 16, 8, 8}, Shape{16, 16, 3, 3}, Shape{16}}};
    Model m = test::one_node_model(c, 3);
    Tensor x = test::case_input(c, 3);
    auto dnn = make_backend("onednn", 2);
    Plan plan(m, *dnn, 8);
    plan.run_all(x.data(), 8);
    const Tensor full = test::copy_of(plan.exit_logits(0));
    for (int n : {1, 3, 8}) {
        CAPTURE(n);
        plan.run_all(x.data(), n);
        const TensorView y = plan.exit_logits(0);
        CHECK(relative_error(y.data, full.data(), y.numel()) <= 1e-6);
    }
}

#ifdef ENGINE_WITH_ONNX
namespace {

// Every exit's logits for the 256 reference images, 64 at a time.
std::vector<std::vector<float>> all_logits(const Model& model, Backend& backend, const Tensor& images) {
    const int64_t per_image = images.numel() / images.shape()[0];
    Plan plan(model, backend, 64);
    std::vector<std::vector<float>> got(model.num_exits());
    for (int off = 0; off < images.shape()[0]; off += 64) {
        plan.run_all(images.data() + off * per_image, 64);
        for (int k = 0; k < model.num_exits(); ++k) {
            const TensorView v = plan.exit_logits(k);
            got[k].insert(got[k].end(), v.data, v.data + v.numel());
        }
    }
    return got;
}

std::vector<SampleResult> early_exits(const Model& model, Backend& backend, const Tensor& images) {
    const int64_t per_image = images.numel() / images.shape()[0];
    const std::vector<float> q(model.num_exits(), 0.9f);
    Plan plan(model, backend, 64);
    std::vector<SampleResult> out(images.shape()[0]);
    for (int off = 0; off < images.shape()[0]; off += 64)
        plan.run_early(images.data() + off * per_image, 64, q.data(), out.data() + off);
    return out;
}

}  // namespace

TEST_CASE("onednn backend reproduces PyTorch's logits and the native backend's early exits on the shared models") {
    if (!test::have_shared("onednn shared models")) return;
    for (const char* name : {"resnet56_s1", "mobilenet_s1", "resnet56_s3"}) {
        CAPTURE(name);
        const std::string dir = test::shared_dir() + "/models/";
        const Model m = import_onnx(dir + name + ".onnx");
        const auto ref = read_safetensors(dir + name + ".reference.safetensors");
        const Tensor& images = ref.at("images");
        // One thread: OpenMP teams stall on a loaded shared machine (the batch-size test runs two).
        auto dnn = make_backend("onednn", 1);
        const auto got = all_logits(m, *dnn, images);
        std::printf("%-13s onednn 256 images, relative error per exit:", name);
        for (int k = 0; k < m.num_exits(); ++k) {
            const Tensor& want = ref.at("exit" + std::to_string(k));
            REQUIRE(int64_t(got[k].size()) == want.numel());
            const double err = relative_error(got[k].data(), want.data(), want.numel());
            std::printf(" %.2e", err);
            CHECK_MESSAGE(err <= 1e-4, name << " exit " << k << " relative error " << err);
        }
        std::printf("\n");

        auto cpu = make_backend("native", 1);
        const auto a = early_exits(m, *cpu, images), b = early_exits(m, *dnn, images);
        std::vector<int> hist(m.num_exits(), 0);
        int same = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            same += a[i].exit == b[i].exit && a[i].cls == b[i].cls;
            hist[b[i].exit]++;
        }
        std::printf("%-13s onednn early exit at q = 0.9, batch 64: %d / %zu as on native, histogram", name, same,
                    a.size());
        for (int h : hist) std::printf(" %d", h);
        std::printf("\n");
        CHECK(same == int(a.size()));
    }
}
#endif

#else
TEST_CASE("onednn backend") { test::skip("onednn backend", "built without ENGINE_WITH_ONEDNN (libdnnl-dev)"); }
#endif
