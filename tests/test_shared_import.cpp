// The reference models in ../shared/models, imported from ONNX and run on each backend, must
// reproduce the logits PyTorch computed for the same 256 CIFAR-10 images, and the multiply-add
// counts the models' README gives for each exit.
#include "engine/config.h"
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#ifdef ENGINE_WITH_ONNX
#include "engine/backend.h"
#include "engine/error.h"
#include "engine/onnx_import.h"
#include "engine/plan.h"
#include "engine/safetensors.h"
#include "test_util.h"

namespace {

struct SharedModel {
    const char* name;
    int exits;
    std::vector<double> mmacs;  // README: millions of multiply-adds to each exit
};

const std::vector<SharedModel> kModels = {
    {"resnet56_s1", 7, {19.3, 38.2, 56.0, 74.9, 92.7, 111.6, 125.8}},
    {"mobilenet_s1", 6, {10.0, 16.6, 23.1, 31.7, 42.4, 46.6}},
    {"resnet56_s3", 7, {19.3, 38.2, 56.0, 74.9, 92.7, 111.6, 125.8}},
};

// Runs `count` reference images through every exit, `batch` at a time; returns the worst
// relative error per exit against PyTorch's logits.
std::vector<double> exit_errors(const engine::Model& model, engine::Backend& backend,
                                const std::map<std::string, engine::Tensor>& ref, int count, int batch) {
    const engine::Tensor& images = ref.at("images");
    const int64_t per_image = images.numel() / images.shape()[0];
    engine::Plan plan(model, backend, batch);
    std::vector<std::vector<float>> got(model.num_exits());
    for (int off = 0; off < count; off += batch) {
        const int n = std::min(batch, count - off);
        plan.run_all(images.data() + off * per_image, n);
        for (int k = 0; k < model.num_exits(); ++k) {
            const engine::TensorView v = plan.exit_logits(k);
            REQUIRE(v.shape[0] == n);
            got[k].insert(got[k].end(), v.data, v.data + v.numel());
        }
    }
    std::vector<double> errs;
    for (int k = 0; k < model.num_exits(); ++k) {
        const engine::Tensor& want = ref.at("exit" + std::to_string(k));
        REQUIRE(static_cast<int64_t>(got[k].size()) == want.numel() / want.shape()[0] * count);
        errs.push_back(engine::relative_error(got[k].data(), want.data(), static_cast<int64_t>(got[k].size())));
    }
    return errs;
}

}  // namespace

TEST_CASE("shared ONNX models import with their exits, weights and costs") {
    if (!test::have_shared("shared ONNX import")) return;
    for (const auto& sm : kModels) {
        CAPTURE(sm.name);
        const std::string path = test::shared_dir() + "/models/" + sm.name + ".onnx";
        const engine::Model m = engine::load_model(path);  // recognises ONNX, imports, validates the exits
        REQUIRE(m.num_exits() == sm.exits);
        CHECK(m.thresholds == std::vector<float>(sm.exits, 0.9f));
        for (int k = 0; k < sm.exits; ++k) CHECK(m.graph.output_names[k] == "exit" + std::to_string(k));
        CHECK(m.metadata.at("source") == "onnx");
        CHECK(m.metadata.at("onnx_file") == std::string(sm.name) + ".onnx");
        REQUIRE(m.graph.inputs.size() == 1);
        CHECK(m.graph.nodes[m.graph.inputs[0]].input_dims == std::vector<int64_t>{-1, 3, 32, 32});
        // Convolution weights are parameters; the input normalisation constants are not.
        for (const auto& n : m.graph.nodes) {
            if (n.op == engine::Op::Conv) CHECK(m.graph.nodes[n.inputs[1]].trainable);
            if (n.op == engine::Op::Sub || n.op == engine::Op::Div) CHECK_FALSE(m.graph.nodes[n.inputs[1]].trainable);
        }
        auto backend = engine::make_backend("ref");
        engine::Plan plan(m, *backend, 1);
        for (int k = 0; k < sm.exits; ++k) {
            const double mmacs = plan.macs_to_exit()[k] / 1e6;
            CHECK_MESSAGE(std::abs(mmacs - sm.mmacs[k]) <= 0.051,
                          sm.name << " exit " << k << ": " << mmacs << " M multiply-adds, README says " << sm.mmacs[k]);
        }
    }
}

TEST_CASE("shared ONNX models reproduce PyTorch's logits") {
    if (!test::have_shared("shared ONNX logits")) return;
    struct Run {
        std::string backend;
        int count, batch;
    };
    // Every backend; the reference backend is plain loops: a slice of the images is enough for it.
    std::vector<Run> runs;
    for (const std::string& name : test::backends())
        runs.push_back({name, name == "ref" ? 32 : 256, name == "ref" ? 32 : 64});
    for (const auto& sm : kModels) {
        const std::string dir = test::shared_dir() + "/models/";
        const engine::Model m = engine::import_onnx(dir + sm.name + ".onnx");
        const auto ref = engine::read_safetensors(dir + sm.name + ".reference.safetensors");
        REQUIRE(ref.at("images").shape() == engine::Shape({256, 3, 32, 32}));
        for (const auto& r : runs) {
            auto backend = engine::make_backend(r.backend);
            const auto errs = exit_errors(m, *backend, ref, r.count, r.batch);
            std::printf("%-13s %-6s %3d images, relative error per exit:", sm.name, r.backend.c_str(), r.count);
            for (double e : errs) std::printf(" %.2e", e);
            std::printf("\n");
            for (size_t k = 0; k < errs.size(); ++k)
                CHECK_MESSAGE(errs[k] <= 1e-4,
                              sm.name << " on " << r.backend << ": exit " << k << " relative error " << errs[k]);
        }
    }
}

#else
TEST_CASE("shared ONNX models") { test::skip("shared ONNX import", "built without ONNX import"); }
#endif
