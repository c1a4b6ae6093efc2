// Renormalised fine-tuning of BN-folded models: inserting BatchNorms keeps every exit's
// inference logits, folding them straight back returns the folded weights, a short
// --renormalize training run stays finite and hands back a model with the input's nodes, and
// resumes from its checkpoint bit-identically.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "engine/error.h"
#include "engine/plan.h"
#include "engine/train/renormalize.h"
#include "engine/train/trainer.h"
#include "engine/model_zoo.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace engine;
using namespace engine::train;

namespace {

Dataset synthetic(int n, int size, uint32_t seed) {
    Dataset d;
    d.images = test::random_tensor(Shape{n, 3, size, size}, seed, 0, 1);
    d.num_classes = 10;
    std::mt19937 rng(seed + 1);
    for (int i = 0; i < n; ++i) d.labels.push_back(int(rng() % 10));
    return d;
}

std::vector<int> batchnorms_of(const Graph& g) {
    std::vector<int> out;
    for (size_t i = 0; i < g.nodes.size(); ++i)
        if (g.nodes[i].op == Op::BatchNorm) out.push_back(int(i));
    return out;
}

// The `small` SDN ResNet with random BatchNorm statistics, folded as an ONNX export folds it:
// every Conv then has a bias and no BatchNorm after it.
Model folded_small(int side) {
    Model m = build_model("small", 10, side, 5);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(0, 1);
    for (int j : batchnorms_of(m.graph)) {
        const Node& bn = m.graph.nodes[j];
        for (float& v : m.graph.nodes[bn.inputs[1]].value.values()) v = 0.5f + u(rng);           // gamma
        for (float& v : m.graph.nodes[bn.inputs[2]].value.values()) v = 0.4f * (u(rng) - 0.5f);  // beta
        for (float& v : m.graph.nodes[bn.inputs[3]].value.values()) v = 0.4f * (u(rng) - 0.5f);  // mean
        for (float& v : m.graph.nodes[bn.inputs[4]].value.values()) v = 0.5f + 1.5f * u(rng);    // var
    }
    fold_batchnorms(m.graph, batchnorms_of(m.graph));
    return m;
}

std::vector<std::vector<float>> exit_logits(const Model& m, const Dataset& d, int n) {
    auto backend = make_backend("ref");
    Plan plan(m, *backend, n);
    plan.run_all(d.images.data(), n, false);
    std::vector<std::vector<float>> out;
    for (int k = 0; k < m.num_exits(); ++k) {
        TensorView z = plan.exit_logits(k);
        out.emplace_back(z.data, z.data + z.numel());
    }
    return out;
}

bool all_finite(const std::vector<float>& v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

// Two epochs of SDN training on the ref backend with --renormalize, statistics from `images` images.
TrainConfig renormalize_config(uint64_t seed, int images) {
    TrainConfig c;
    c.mode = "sdn";
    c.epochs = 2;
    c.batch = 32;
    c.seed = seed;
    c.schedule.kind = "constant";
    c.schedule.lr = 0.05f;
    c.val_limit = 0;
    c.renormalize = true;
    c.renormalize_images = images;
    c.backend = "ref";
    return c;
}

int count_op(const Graph& g, Op op) {
    int c = 0;
    for (const Node& n : g.nodes) c += n.op == op;
    return c;
}

}  // namespace

TEST_CASE("renormalize: folding a built model leaves Convs with biases and no BatchNorm, same logits") {
    Model bn = build_model("small", 10, 16, 5);
    Model folded = bn;
    fold_batchnorms(folded.graph, batchnorms_of(folded.graph));
    CHECK(count_op(folded.graph, Op::BatchNorm) == 0);
    for (const Node& n : folded.graph.nodes)
        if (n.op == Op::Conv) CHECK(n.inputs.size() == 3);
    const Dataset d = synthetic(8, 16, 3);
    const auto want = exit_logits(bn, d, 8), got = exit_logits(folded, d, 8);
    for (size_t k = 0; k < want.size(); ++k)
        CHECK(relative_error(got[k].data(), want[k].data(), int64_t(want[k].size())) <= 1e-5);
}

TEST_CASE("renormalize: inserting BatchNorms keeps every exit's inference logits") {
    const Model folded = folded_small(16);
    const int convs = count_op(folded.graph, Op::Conv);
    Model rn = folded;
    const Dataset train = synthetic(96, 16, 1);
    auto backend = make_backend("ref");
    const auto inserted = insert_batchnorms(rn, train, 64, *backend);
    REQUIRE(int(inserted.size()) == convs);
    CHECK(rn.graph.nodes.size() == folded.graph.nodes.size() + 5 * inserted.size());
    for (int j : inserted) {
        const Node& b = rn.graph.nodes[j];
        CHECK(b.op == Op::BatchNorm);
        const Node& conv = rn.graph.nodes[b.inputs[0]];
        CHECK(b.name == conv.name + ".bn");
        CHECK(rn.graph.nodes[b.inputs[1]].name == conv.name + ".bn.weight");
        CHECK(rn.graph.nodes[b.inputs[1]].trainable);
        CHECK_FALSE(rn.graph.nodes[b.inputs[3]].trainable);
        const auto& bias = rn.graph.nodes[conv.inputs[2]].value.values();  // moved into beta
        CHECK(std::all_of(bias.begin(), bias.end(), [](float v) { return v == 0.0f; }));
    }
    // The rescaled convolutions give unit variance per channel on the estimation images.
    {
        Plan plan(rn, *backend, 64, /*keep_all=*/true);
        plan.run_all(train.images.data(), 64, false);
        const TensorView y = plan.value(rn.graph.nodes[inserted[0]].inputs[0]);
        const int64_t K = y.shape[1], inner = y.numel() / (64 * K);
        for (int64_t k = 0; k < K; ++k) {
            double s = 0, s2 = 0;
            for (int64_t r = 0; r < 64; ++r)
                for (int64_t i = 0; i < inner; ++i) {
                    const double v = y[(r * K + k) * inner + i];
                    s += v, s2 += v * v;
                }
            const double n = double(64 * inner), mean = s / n;
            CHECK(s2 / n - mean * mean == doctest::Approx(1.0).epsilon(1e-3));
        }
    }
    const Dataset test = synthetic(16, 16, 2);  // other images than the estimation's
    const auto want = exit_logits(folded, test, 16), got = exit_logits(rn, test, 16);
    REQUIRE(want.size() == 4);
    for (size_t k = 0; k < want.size(); ++k) {
        INFO("exit " << k);
        CHECK(relative_error(got[k].data(), want[k].data(), int64_t(want[k].size())) <= 1e-5);
    }
    // A Conv already followed by a BatchNorm gets no second one.
    Model again = rn;
    CHECK(insert_batchnorms(again, train, 64, *backend).empty());
    CHECK(again.graph.nodes.size() == rn.graph.nodes.size());
}

TEST_CASE("renormalize: inserting then folding back returns the original nodes and weights") {
    const Model folded = folded_small(16);
    Model rn = folded;
    auto backend = make_backend("ref");
    const auto inserted = insert_batchnorms(rn, synthetic(64, 16, 1), 64, *backend);
    REQUIRE(!inserted.empty());
    fold_batchnorms(rn.graph, inserted);
    const Graph &a = folded.graph, &b = rn.graph;
    REQUIRE(a.nodes.size() == b.nodes.size());
    CHECK(a.outputs == b.outputs);
    CHECK(a.inputs == b.inputs);
    for (size_t i = 0; i < a.nodes.size(); ++i) {
        INFO("node " << i << " '" << a.nodes[i].name << "'");
        CHECK(a.nodes[i].name == b.nodes[i].name);
        CHECK(a.nodes[i].op == b.nodes[i].op);
        CHECK(a.nodes[i].inputs == b.nodes[i].inputs);
        CHECK(a.nodes[i].trainable == b.nodes[i].trainable);
        if (a.nodes[i].op != Op::Constant) continue;
        const Tensor &x = a.nodes[i].value, &y = b.nodes[i].value;
        REQUIRE(x.shape() == y.shape());
        CHECK(relative_error(y.data(), x.data(), x.numel()) <= 1e-5);
    }
}

TEST_CASE("renormalize: a few training steps stay finite and the output has the input's nodes") {
    const Model folded = folded_small(16);
    Model m = folded;
    const Dataset train = synthetic(96, 16, 4);
    TrainConfig c = renormalize_config(3, 64);
    {
        Trainer t(m, train, nullptr, c);
        CHECK(t.inserted_batchnorms().size() == size_t(count_op(folded.graph, Op::Conv)));
        CHECK(count_op(m.graph, Op::BatchNorm) == int(t.inserted_batchnorms().size()));
        const Tensor& running_var = m.graph.nodes[m.graph.nodes[t.inserted_batchnorms()[0]].inputs[4]].value;
        const std::vector<float> before = running_var.values();
        const auto history = t.fit();
        REQUIRE(history.size() == 2);
        for (const auto& e : history) CHECK(std::isfinite(e.train_loss));
        CHECK(running_var.values() != before);  // trained in BatchNorm training mode
    }
    REQUIRE(m.graph.nodes.size() == folded.graph.nodes.size());
    CHECK(count_op(m.graph, Op::BatchNorm) == 0);
    bool changed = false;
    for (size_t i = 0; i < m.graph.nodes.size(); ++i) {
        CHECK(m.graph.nodes[i].name == folded.graph.nodes[i].name);
        CHECK(all_finite(m.graph.nodes[i].value.values()));
        if (m.graph.nodes[i].op == Op::Constant)
            changed = changed || m.graph.nodes[i].value.values() != folded.graph.nodes[i].value.values();
    }
    CHECK(changed);
    const auto dir = std::filesystem::temp_directory_path() / ("test_renormalize_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "out.model").string();
    save_model(m, path);
    const Model loaded = load_model(path);
    CHECK(loaded.graph.nodes.size() == folded.graph.nodes.size());
    const auto logits = exit_logits(loaded, synthetic(8, 16, 6), 8);
    for (const auto& z : logits) CHECK(all_finite(z));
    std::filesystem::remove_all(dir);
}

TEST_CASE("renormalize: a run stopped after an epoch resumes from its checkpoint bit-identically") {
    const Model folded = folded_small(16);
    const Dataset train = synthetic(64, 16, 7);
    TrainConfig c = renormalize_config(5, 32);
    Model straight = folded;
    { Trainer(straight, train, nullptr, c).fit(); }

    const auto dir = std::filesystem::temp_directory_path() / ("test_renormalize_ckpt_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    c.checkpoint_path = (dir / "run.ckpt").string();
    Model first = folded;
    { Trainer(first, train, nullptr, c).fit(1); }
    Model resumed = folded;  // as engine_train --resume does: the input model again, then the checkpoint
    {
        Trainer t(resumed, train, nullptr, c);
        t.load_checkpoint(c.checkpoint_path);
        t.fit();
        CHECK(t.finished());
    }
    REQUIRE(resumed.graph.nodes.size() == straight.graph.nodes.size());
    for (size_t i = 0; i < straight.graph.nodes.size(); ++i)
        CHECK(resumed.graph.nodes[i].value.values() == straight.graph.nodes[i].value.values());

    // Without --renormalize the checkpoint's graph does not match, and resuming says so.
    TrainConfig plain = c;
    plain.renormalize = false;
    Model m = folded;
    Trainer t(m, train, nullptr, plain);
    CHECK_THROWS_AS(t.load_checkpoint(c.checkpoint_path), Error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("renormalize: only Convs without a BatchNorm get one; a Conv without bias gets it on folding") {
    // tiny_model: conv1 (bias) -> bn1 -> relu -> ..., conv2 (no bias) -> relu -> ...
    const Model m = test::tiny_model(3, 8);
    Model rn = m;
    auto backend = make_backend("ref");
    const Dataset d = synthetic(16, 8, 2);
    const auto inserted = insert_batchnorms(rn, d, 16, *backend);
    REQUIRE(inserted.size() == 1);
    CHECK(rn.graph.nodes[inserted[0]].name == "conv2.bn");
    const auto want = exit_logits(m, d, 16), got = exit_logits(rn, d, 16);
    for (size_t k = 0; k < want.size(); ++k)
        CHECK(relative_error(got[k].data(), want[k].data(), int64_t(want[k].size())) <= 1e-5);
    fold_batchnorms(rn.graph, inserted);
    CHECK(rn.graph.nodes.size() == m.graph.nodes.size() + 1);
    const int conv2 = rn.graph.find("conv2");
    REQUIRE(rn.graph.nodes[conv2].inputs.size() == 3);
    CHECK(rn.graph.nodes[rn.graph.nodes[conv2].inputs[2]].name == "conv2.bias");
    CHECK(count_op(rn.graph, Op::BatchNorm) == 1);  // bn1 stays
    const auto back = exit_logits(rn, d, 16);
    for (size_t k = 0; k < want.size(); ++k)
        CHECK(relative_error(back[k].data(), want[k].data(), int64_t(want[k].size())) <= 1e-5);
}
