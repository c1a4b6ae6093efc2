// Model builders: structure against the shared PyTorch models (parameter shapes read straight from
// the safetensors header, MACs per exit from the README), validity at every supported size,
// initialisation statistics and determinism, and loading a PyTorch state dict.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <set>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "engine/model_zoo.h"
#include "test_util.h"

using namespace engine;

namespace {

// Shapes of every tensor in a safetensors file but num_batches_tracked, read independently of the
// engine's reader: 8-byte length, then the JSON header.
std::multiset<std::vector<int64_t>> safetensors_shapes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    uint64_t len = 0;
    in.read(reinterpret_cast<char*>(&len), 8);
    std::string header(len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(len));
    auto j = nlohmann::json::parse(header);
    std::multiset<std::vector<int64_t>> shapes;
    for (auto& [key, value] : j.items()) {
        if (key == "__metadata__" || key.find("num_batches_tracked") != std::string::npos) continue;
        shapes.insert(value["shape"].get<std::vector<int64_t>>());
    }
    return shapes;
}

std::multiset<std::vector<int64_t>> constant_shapes(const Graph& g) {
    std::multiset<std::vector<int64_t>> shapes;
    for (const Node& n : g.nodes)
        if (n.op == Op::Constant) shapes.insert(n.value.shape().vec());
    return shapes;
}

void check_exit_macs(const Model& m, const std::vector<double>& expected_m) {
    auto macs = exit_macs(m.graph);
    REQUIRE(macs.size() == expected_m.size());
    for (size_t k = 0; k < macs.size(); ++k) {
        INFO("exit " << k << ": " << macs[k] << " MACs, README " << expected_m[k] << " M");
        // The README rounds to 0.1 M.
        CHECK(std::fabs(double(macs[k]) / 1e6 - expected_m[k]) <= 0.05 + 1e-9);
    }
}

double sample_std(const std::vector<float>& v) {
    double s = 0, s2 = 0;
    for (float x : v) s += x, s2 += double(x) * x;
    double mean = s / v.size();
    return std::sqrt(s2 / v.size() - mean * mean);
}

}  // namespace

TEST_CASE("model_names lists the five architectures") {
    auto names = model_names();
    std::set<std::string> got(names.begin(), names.end());
    CHECK(got == std::set<std::string>{"resnet56", "vgg16", "mobilenet", "small", "tiny"});
}

TEST_CASE("every builder validates and infers shapes at every supported size") {
    struct Case {
        std::string arch;
        int classes, size, channels, exits;
    };
    std::vector<Case> cases;
    for (std::string a : {"resnet56", "vgg16", "mobilenet", "small", "tiny"}) {
        int exits = a == "resnet56" || a == "vgg16" ? 7 : a == "mobilenet" ? 6 : a == "small" ? 4 : 3;
        cases.push_back({a, 10, 32, 3, exits});
        cases.push_back({a, 100, 32, 3, exits});
        cases.push_back({a, 200, 64, 3, exits});
        if (a == "small" || a == "tiny") cases.push_back({a, 10, 28, 1, exits});
    }
    cases.push_back({"tiny", 5, 8, 3, 3});
    cases.push_back({"small", 10, 8, 3, 4});
    for (const auto& c : cases) {
        INFO(c.arch << " classes=" << c.classes << " size=" << c.size << " channels=" << c.channels);
        Model m = build_model(c.arch, c.classes, c.size, 7, c.channels);
        CHECK_NOTHROW(m.validate());
        CHECK(m.num_exits() == c.exits);
        CHECK(m.thresholds == std::vector<float>(c.exits, 0.9f));
        CHECK(m.metadata["arch"] == c.arch);
        CHECK(m.metadata["num_classes"] == std::to_string(c.classes));
        CHECK(m.metadata["image_size"] == std::to_string(c.size));
        CHECK(m.metadata["seed"] == "7");
        REQUIRE(m.graph.inputs.size() == 1);
        CHECK(m.graph.nodes[m.graph.inputs[0]].input_dims == std::vector<int64_t>{-1, c.channels, c.size, c.size});
        auto shapes = m.graph.infer_shapes(3);
        for (int k = 0; k < m.num_exits(); ++k) {
            CHECK(m.graph.output_names[k] == "exit" + std::to_string(k));
            CHECK(shapes[m.graph.outputs[k]] == Shape{3, c.classes});
        }
        // Exits in depth order: each needs strictly more work than the one before.
        auto macs = exit_macs(m.graph);
        for (size_t k = 1; k < macs.size(); ++k) CHECK(macs[k] > macs[k - 1]);
        std::set<std::string> names;
        for (const Node& n : m.graph.nodes) names.insert(n.name);
        CHECK(names.size() == m.graph.nodes.size());
    }
}

TEST_CASE("bad arguments name the model and the problem") {
    CHECK_THROWS_WITH_AS(build_model("resnet18", 10, 32, 1), doctest::Contains("unknown architecture"), Error);
    CHECK_THROWS_WITH_AS(build_model("resnet56", 10, 48, 1), doctest::Contains("image size"), Error);
    CHECK_THROWS_WITH_AS(build_model("mobilenet", 10, 32, 1, 1), doctest::Contains("input channels"), Error);
    CHECK_THROWS_WITH_AS(build_model("tiny", 1, 32, 1), doctest::Contains("classes"), Error);
}

TEST_CASE("resnet56 and mobilenet have the shared models' parameter shapes and MACs per exit") {
    if (!test::have_shared("model zoo vs shared models")) return;
    const std::string dir = test::shared_dir() + "/models/";
    Model r = build_model("resnet56", 10, 32, 1);
    CHECK(constant_shapes(r.graph) == safetensors_shapes(dir + "resnet56_s1.safetensors"));
    check_exit_macs(r, {19.3, 38.2, 56.0, 74.9, 92.7, 111.6, 125.8});
    Model m = build_model("mobilenet", 10, 32, 1);
    CHECK(constant_shapes(m.graph) == safetensors_shapes(dir + "mobilenet_s1.safetensors"));
    check_exit_macs(m, {10.0, 16.6, 23.1, 31.7, 42.4, 46.6});
}

TEST_CASE("the small net: about 193 k parameters and 27 M multiply-adds, 4 exits") {
    Model m = build_model("small", 10, 32, 3);
    int64_t params = count_parameters(m.graph);
    CHECK(params > 185000);
    CHECK(params < 200000);
    auto macs = exit_macs(m.graph);
    CHECK(macs.back() > 26000000);
    CHECK(macs.back() < 28000000);
    // Hand count of the backbone to the first exit: conv 3->16 and four 16->16 convs at 32x32,
    // plus the IC (16 channels pooled to 4x4, 10 classes).
    CHECK(macs[0] == (3 * 16 * 9 + 4 * 16 * 16 * 9) * 1024 + 16 * 16 * 10);
    Model t = build_model("tiny", 10, 32, 3);
    CHECK(count_parameters(t.graph) < 10000);
}

TEST_CASE("initialisation: deterministic per seed, He-normal convs, uniform linears, BN identity") {
    Model a = build_model("resnet56", 10, 32, 11), b = build_model("resnet56", 10, 32, 11),
          c = build_model("resnet56", 10, 32, 12);
    REQUIRE(a.graph.nodes.size() == c.graph.nodes.size());
    bool all_same = true, any_diff = false;
    for (size_t i = 0; i < a.graph.nodes.size(); ++i) {
        all_same = all_same && a.graph.nodes[i].value.values() == b.graph.nodes[i].value.values();
        any_diff = any_diff || a.graph.nodes[i].value.values() != c.graph.nodes[i].value.values();
    }
    CHECK(all_same);
    CHECK(any_diff);

    const Graph& g = a.graph;
    auto value = [&](const std::string& name) -> const std::vector<float>& {
        int i = g.find(name);
        REQUIRE_MESSAGE(i >= 0, name);
        return g.nodes[i].value.values();
    };
    // 64x64x3x3 conv: fan_out 576, so std sqrt(2/576) = 0.0589; 36864 samples give about 0.4 % noise.
    CHECK(sample_std(value("segs.6.layers.4.c2.weight")) == doctest::Approx(std::sqrt(2.0 / 576)).epsilon(0.02));
    const auto& fc = value("segs.6.layers.8.weight");  // 10x64: uniform(+-1/8)
    CHECK(*std::max_element(fc.begin(), fc.end()) <= 0.125f);
    CHECK(*std::min_element(fc.begin(), fc.end()) >= -0.125f);
    CHECK(sample_std(value("segs.5.ic.fc.weight")) ==
          doctest::Approx(1 / std::sqrt(1024.0) / std::sqrt(3.0)).epsilon(0.03));
    CHECK(value("segs.0.ic.alpha") == std::vector<float>{0.5f});
    CHECK(value("segs.2.layers.2.sc.1.weight") == std::vector<float>(32, 1.0f));
    CHECK(value("segs.2.layers.2.sc.1.bias") == std::vector<float>(32, 0.0f));
    CHECK(value("segs.2.layers.2.sc.1.running_mean") == std::vector<float>(32, 0.0f));
    CHECK(value("segs.2.layers.2.sc.1.running_var") == std::vector<float>(32, 1.0f));
    CHECK(!g.nodes[g.find("segs.2.layers.2.sc.1.running_var")].trainable);
    CHECK(g.nodes[g.find("segs.2.layers.2.sc.1.weight")].trainable);
    CHECK(!g.nodes[g.find("segs.0.layers.0.mean")].trainable);
    CHECK(value("segs.0.layers.0.std") == std::vector<float>{0.2470f, 0.2435f, 0.2616f});
}

TEST_CASE("ICs: mixed pooling to 4x4 where the side is at least 4, flatten only below") {
    Model m = build_model("mobilenet", 10, 32, 1);
    const Graph& g = m.graph;
    auto shapes = g.infer_shapes(1);
    int pool0 = g.find("segs.0.ic.pool");
    REQUIRE(pool0 >= 0);
    CHECK(g.nodes[pool0].op == Op::MixedPool);
    CHECK(g.nodes[pool0].attrs.kernel[0] == 4);
    CHECK(shapes[pool0] == Shape{1, 128, 4, 4});
    CHECK(shapes[g.find("segs.1.ic.pool")] == Shape{1, 256, 4, 4});
    // 512 channels at 4x4: a kernel of 1 is the identity, left out; 1024 at 2x2: no pooling.
    CHECK(g.find("segs.3.ic.pool") < 0);
    CHECK(shapes[g.find("segs.3.ic.flatten")] == Shape{1, 8192});
    CHECK(g.find("segs.4.ic.pool") < 0);
    // Every head still owns its alpha (unused without pooling), as the PyTorch module does.
    CHECK(g.find("segs.4.ic.alpha") >= 0);
    CHECK(shapes[g.find("segs.4.ic.flatten")] == Shape{1, 4096});
    CHECK(g.nodes[g.find("segs.4.ic.fc")].attrs.trans_b);
}

TEST_CASE("load_pytorch_state maps the shared state dicts by name") {
    if (!test::have_shared("load_pytorch_state")) return;
    const std::string dir = test::shared_dir() + "/models/";
    for (std::string arch : {"resnet56", "mobilenet"}) {
        INFO(arch);
        Model m = build_model(arch, 10, 32, 3);
        const std::string path = dir + arch + "_s1.safetensors";
        load_pytorch_state(m, path);
        auto tensors = read_safetensors(path);
        int checked = 0;
        for (auto& [key, t] : tensors) {
            if (key.find("num_batches_tracked") != std::string::npos) continue;
            int i = m.graph.find("segs." + key);
            REQUIRE_MESSAGE(i >= 0, key);
            CHECK(m.graph.nodes[i].value.values() == t.values());
            ++checked;
        }
        CHECK(checked > 100);
    }
    Model r = build_model("resnet56", 10, 32, 3);
    CHECK_THROWS_WITH_AS(load_pytorch_state(r, dir + "mobilenet_s1.safetensors"), doctest::Contains("mobilenet"),
                         Error);
    Model r100 = build_model("resnet56", 100, 32, 3);
    CHECK_THROWS_WITH_AS(load_pytorch_state(r100, dir + "resnet56_s1.safetensors"), doctest::Contains("has shape"),
                         Error);
}
