// Training: loss gradients against finite differences, optimiser steps and schedules against
// hand-computed values, augmentation against a brute-force search, pruning, re-initialisation,
// frozen parameters, PGD bounds, bit-identical determinism and resume, and (with ../shared) a
// short CIFAR-10 run that must beat chance clearly.
#include "engine/config.h"
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "engine/exit_policy.h"
#include "engine/train/exit_mimicry.h"
#include "engine/train/loss.h"
#include "engine/train/trainer.h"
#include "engine/model_zoo.h"
#include "test_util.h"

using namespace engine;
using namespace engine::train;

namespace {

// n random images of the model's input size; the label is the brightest of `classes` image
// regions, so that there is something to learn.
Dataset synthetic(int n, int size, uint32_t seed, int classes = 10) {
    Dataset d;
    d.images = test::random_tensor(Shape{n, 3, size, size}, seed, 0, 1);
    d.num_classes = classes;
    std::mt19937 rng(seed + 1);
    for (int i = 0; i < n; ++i) d.labels.push_back(int(rng() % classes));
    return d;
}

// Every Constant's values (weights and BatchNorm statistics), concatenated.
std::vector<float> all_values(const Model& m) {
    std::vector<float> v;
    for (const auto& n : m.graph.nodes)
        if (n.op == Op::Constant) v.insert(v.end(), n.value.values().begin(), n.value.values().end());
    return v;
}

// n images whose label (one of four) is the brightened quadrant, at a strength that varies from
// sample to sample: strong samples are easy, faint ones hard, as an early-exit model needs.
Dataset quadrants(int n, int size, uint32_t seed) {
    Dataset d = synthetic(n, size, seed);
    std::mt19937 rng(seed + 2);
    std::uniform_real_distribution<float> strength(0.0f, 0.6f);
    const int half = size / 2;
    for (int i = 0; i < n; ++i) {
        const int y = int(rng() % 4);
        d.labels[i] = y;
        const float a = strength(rng);
        float* img = d.images.data() + int64_t(i) * 3 * size * size;
        for (int c = 0; c < 3; ++c)
            for (int r = 0; r < size; ++r)
                for (int q = 0; q < size; ++q) {
                    float& v = img[(c * size + r) * size + q];
                    v = 0.4f * v + ((r < half) == (y < 2) && (q < half) == (y % 2 == 0) ? a : 0.0f);
                }
    }
    return d;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TrainConfig quick_config(int epochs = 1) {
    TrainConfig c;
    c.mode = "sdn";
    c.epochs = epochs;
    c.batch = 32;
    c.seed = 11;
    c.optimizer.weight_decay = 5e-4f;
    c.schedule.lr = 0.05f;
    c.val_limit = 0;
    return c;
}

std::string temp_path(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("test_train_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    return (dir / name).string();
}

// Central differences of f at every element of z.
template <class F>
std::vector<double> numeric_grad(std::vector<float>& z, F f) {
    std::vector<double> g(z.size());
    const float h = 1e-2f;
    for (size_t i = 0; i < z.size(); ++i) {
        const float keep = z[i];
        z[i] = keep + h;
        const double up = f();
        z[i] = keep - h;
        const double down = f();
        z[i] = keep;
        g[i] = (up - down) / (2.0 * h);
    }
    return g;
}

double max_rel_error(const std::vector<float>& a, const std::vector<double>& b) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(a[i] - b[i])), scale = std::max(scale, std::abs(b[i]));
    return worst / scale;
}

}  // namespace

TEST_CASE("cross-entropy: value by hand, gradient against finite differences") {
    // Two classes, logits (0, ln 3): softmax (1/4, 3/4); label 1 -> -ln(3/4).
    const float z2[] = {0.0f, std::log(3.0f)};
    const int y2[] = {1};
    float g2[2];
    int correct = -1;
    CHECK(softmax_cross_entropy(z2, y2, 1, 2, g2, 1.0f, &correct) == doctest::Approx(-std::log(0.75)).epsilon(1e-6));
    CHECK(correct == 1);
    CHECK(g2[0] == doctest::Approx(0.25));
    CHECK(g2[1] == doctest::Approx(-0.25));

    const int n = 3, classes = 5;
    auto zt = test::random_tensor(Shape{n, classes}, 3, -3, 3);
    std::vector<float> z = zt.values();
    const int labels[] = {4, 0, 2};
    std::vector<float> g(z.size());
    softmax_cross_entropy(z.data(), labels, n, classes, g.data(), 0.7f);
    auto num = numeric_grad(z, [&] { return 0.7 * softmax_cross_entropy(z.data(), labels, n, classes, nullptr); });
    CHECK(max_rel_error(g, num) < 1e-3);
    CHECK_THROWS_AS(softmax_cross_entropy(z.data(), std::vector<int>{5, 0, 0}.data(), n, classes, nullptr), Error);
}

TEST_CASE("distillation: alpha 0 is cross-entropy, equal logits give no KL, gradient against finite differences") {
    const int n = 4, classes = 6;
    std::vector<float> s = test::random_tensor(Shape{n, classes}, 5, -2, 2).values();
    std::vector<float> t = test::random_tensor(Shape{n, classes}, 6, -4, 4).values();
    const int labels[] = {1, 5, 0, 3};
    CHECK(distillation_loss(s.data(), t.data(), labels, n, classes, 3, 0, nullptr) ==
          doctest::Approx(softmax_cross_entropy(s.data(), labels, n, classes, nullptr)));
    CHECK(distillation_loss(s.data(), s.data(), labels, n, classes, 3, 1, nullptr) == doctest::Approx(0).epsilon(1e-9));
    std::vector<float> g(s.size());
    distillation_loss(s.data(), t.data(), labels, n, classes, 2.5f, 0.6f, g.data(), 1.3f);
    auto num = numeric_grad(
        s, [&] { return 1.3 * distillation_loss(s.data(), t.data(), labels, n, classes, 2.5f, 0.6f, nullptr); });
    CHECK(max_rel_error(g, num) < 1e-3);
}

TEST_CASE("SDN exit weights grow linearly to their caps; the final exit weighs 1") {
    auto w = sdn_exit_weights(7, 0.5);
    REQUIRE(w.size() == 7);
    const float caps[] = {0.15f, 0.3f, 0.45f, 0.6f, 0.75f, 0.9f};
    for (int i = 0; i < 6; ++i) CHECK(w[i] == doctest::Approx(caps[i] / 2));
    CHECK(w[6] == 1.0f);
    auto end = sdn_exit_weights(4, 1.0);
    CHECK(end == std::vector<float>{0.15f, 0.3f, 0.45f, 1.0f});
    auto many = sdn_exit_weights(9, 1.0);  // 8 ICs: 0.15 .. 0.9 evenly
    CHECK(many[0] == doctest::Approx(0.15));
    CHECK(many[7] == doctest::Approx(0.9));
    CHECK(many[8] == 1.0f);
    CHECK(final_exit_weights(3) == std::vector<float>{0, 0, 1});
}

TEST_CASE("SGD with Nesterov momentum and weight decay: two steps by hand") {
    std::vector<float> p = {1.0f, -2.0f};
    const std::vector<float> g = {0.5f, 0.25f};
    std::vector<ParamRef> refs = {{"p", p.data(), 2}};
    OptimizerConfig c;
    c.kind = "sgd";
    c.momentum = 0.9f;
    c.nesterov = true;
    c.weight_decay = 0.01f;
    auto opt = make_optimizer(c, refs);
    opt->step(refs, {g.data()}, 0.1f);
    CHECK(p[0] == doctest::Approx(0.9031).epsilon(1e-6));
    CHECK(p[1] == doctest::Approx(-2.0437).epsilon(1e-6));
    opt->step(refs, {g.data()}, 0.1f);
    CHECK(p[0] == doctest::Approx(0.76507411).epsilon(1e-6));
    CHECK(p[1] == doctest::Approx(-2.10594697).epsilon(1e-6));
    auto state = opt->state();
    REQUIRE(state.size() == 1);
    CHECK(state[0].first == "p/momentum");
    CHECK((*state[0].second)[0] == doctest::Approx(0.968031).epsilon(1e-6));

    // Plain SGD without momentum: p -= lr * g.
    std::vector<float> q = {2.0f};
    std::vector<ParamRef> qr = {{"q", q.data(), 1}};
    OptimizerConfig plain;
    plain.momentum = 0;
    plain.nesterov = false;
    auto sgd = make_optimizer(plain, qr);
    const float gq = 4.0f;
    sgd->step(qr, {&gq}, 0.25f);
    CHECK(q[0] == 1.0f);
}

TEST_CASE("Adam: two steps by hand") {
    std::vector<float> p = {1.0f};
    std::vector<ParamRef> refs = {{"w", p.data(), 1}};
    OptimizerConfig c;
    c.kind = "adam";
    auto opt = make_optimizer(c, refs);
    const float g1 = 0.5f, g2 = -0.25f;
    opt->step(refs, {&g1}, 0.01f);
    CHECK(p[0] == doctest::Approx(0.99).epsilon(1e-6));
    opt->step(refs, {&g2}, 0.01f);
    CHECK(p[0] == doctest::Approx(0.98733663).epsilon(1e-6));
    CHECK(opt->steps() == 2);
    CHECK_THROWS_AS(make_optimizer(OptimizerConfig{"rmsprop"}, refs), Error);
}

TEST_CASE("learning-rate schedules at chosen steps") {
    ScheduleConfig one;
    one.kind = "onecycle";
    one.lr = 1.0f;
    one.total_steps = 100;  // warm-up ends at step 29, annealing at 99 (PyTorch's OneCycleLR)
    CHECK(learning_rate(one, 0) == doctest::Approx(0.04));
    CHECK(learning_rate(one, 29) == doctest::Approx(1.0));
    CHECK(learning_rate(one, 64) == doctest::Approx(0.500002));
    CHECK(learning_rate(one, 99) == doctest::Approx(4e-6));
    CHECK(learning_rate(one, 10) > learning_rate(one, 5));

    ScheduleConfig cos = one;
    cos.kind = "cosine";
    CHECK(learning_rate(cos, 0) == doctest::Approx(1.0));
    CHECK(learning_rate(cos, 50) == doctest::Approx(0.5));
    CHECK(learning_rate(cos, 100) == doctest::Approx(0.0));

    ScheduleConfig ms = one;
    ms.kind = "multistep";
    CHECK(learning_rate(ms, 49) == doctest::Approx(1.0));
    CHECK(learning_rate(ms, 50) == doctest::Approx(0.1));
    CHECK(learning_rate(ms, 75) == doctest::Approx(0.01));

    ScheduleConfig bad = one;
    bad.kind = "linear";
    CHECK_THROWS_AS(learning_rate(bad, 0), Error);
}

TEST_CASE("augmentation: every sample is a zero-padded shift by at most 4, maybe mirrored; order is a permutation") {
    Dataset d = synthetic(16, 8, 21);
    auto rng = epoch_rng(5, 0);
    auto order = shuffled_order(16, rng);
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 16; ++i) CHECK(sorted[i] == i);
    std::vector<float> out(16 * 3 * 64);
    std::vector<int> labels(16);
    make_batch(d, order.data(), 16, AugmentConfig{}, rng, out.data(), labels.data());
    int flips = 0;
    for (int r = 0; r < 16; ++r) {
        CHECK(labels[r] == d.labels[order[r]]);
        const float* src = d.images.data() + order[r] * 192;
        const float* got = out.data() + r * 192;
        bool found = false;
        for (int flip = 0; flip < 2 && !found; ++flip)
            for (int dy = -4; dy <= 4 && !found; ++dy)
                for (int dx = -4; dx <= 4 && !found; ++dx) {
                    bool match = true;
                    for (int c = 0; c < 3 && match; ++c)
                        for (int y = 0; y < 8 && match; ++y)
                            for (int x = 0; x < 8 && match; ++x) {
                                const int sy = y + dy, sx = (flip ? 7 - x : x) + dx;
                                const float want =
                                    sy >= 0 && sy < 8 && sx >= 0 && sx < 8 ? src[c * 64 + sy * 8 + sx] : 0.0f;
                                match = got[c * 64 + y * 8 + x] == want;
                            }
                    if (match) found = true, flips += flip;
                }
        CHECK(found);
    }
    CHECK(flips > 0);
    CHECK(flips < 16);
    // Same (seed, epoch): same order; another epoch: another order.
    auto again = epoch_rng(5, 0), other = epoch_rng(5, 1);
    CHECK(shuffled_order(16, again) == order);
    CHECK(shuffled_order(16, other) != order);
}

TEST_CASE("magnitude pruning prunes the smallest weights and training keeps them at zero") {
    Model m = build_model("tiny", 10, 16, 3);
    PruneMask mask = magnitude_prune(m.graph, 0.4);
    CHECK(mask.pruned == std::llround(0.4 * mask.total));
    float max_pruned = 0, min_kept = 1e30f;
    int64_t zeros = 0;
    for (size_t i = 0; i < mask.nodes.size(); ++i) {
        const Tensor& w = m.graph.nodes[mask.nodes[i]].value;
        CHECK((w.shape().rank == 4 || w.shape().rank == 2));
        for (int64_t k = 0; k < w.numel(); ++k) {
            if (mask.keep[i][k])
                min_kept = std::min(min_kept, std::abs(w[k]));
            else
                max_pruned = std::max(max_pruned, std::abs(w[k])), zeros += w[k] == 0.0f;
        }
    }
    CHECK(zeros == mask.pruned);
    CHECK(min_kept > 0);
    CHECK(max_pruned <= min_kept);

    Model t = build_model("tiny", 10, 16, 3);
    Model before = t;
    Dataset data = synthetic(96, 16, 4);
    TrainConfig c = quick_config();
    c.prune = 0.4;
    {
        Trainer trainer(t, data, nullptr, c);
        trainer.fit();
        const PruneMask& pm = trainer.prune_mask();
        CHECK(pm.pruned == mask.pruned);
        int64_t changed = 0;
        for (size_t i = 0; i < pm.nodes.size(); ++i) {
            const Tensor& w = t.graph.nodes[pm.nodes[i]].value;
            const Tensor& w0 = before.graph.nodes[pm.nodes[i]].value;
            for (int64_t k = 0; k < w.numel(); ++k) {
                if (!pm.keep[i][k]) CHECK(w[k] == 0.0f);
                changed += pm.keep[i][k] && w[k] != w0[k];
            }
        }
        CHECK(changed > pm.total - pm.pruned - 10);  // the kept weights do train
    }
    CHECK_THROWS_AS(magnitude_prune(t.graph, 1.0), Error);
}

TEST_CASE("int8 weight quantisation: per-channel grids of 255 levels, error at most half a step") {
    Model m = build_model("tiny", 10, 16, 3);
    const Model before = m;
    const int64_t n = quantize_weights(m.graph, 8);
    int64_t expected = 0, checked = 0;
    for (int i : trainable_nodes(m.graph)) {
        const Tensor& q = m.graph.nodes[i].value;
        const Tensor& w = before.graph.nodes[i].value;
        const int rank = q.shape().rank;
        if (rank != 4 && rank != 2) {
            CHECK(same_bytes(q.values(), w.values()));  // biases and BatchNorm untouched
            continue;
        }
        expected += q.numel();
        const int64_t groups = rank == 4 ? q.shape()[0] : 1, per = q.numel() / groups;
        for (int64_t g = 0; g < groups; ++g) {
            float top = 0;
            for (int64_t k = 0; k < per; ++k) top = std::max(top, std::abs(w[g * per + k]));
            const double step = top / 127.0;
            for (int64_t k = 0; k < per; ++k, ++checked) {
                const double level = q[g * per + k] / step;
                CHECK(std::abs(level - std::round(level)) < 1e-3);
                CHECK(std::abs(level) <= 127.0 + 1e-3);
                CHECK(std::abs(q[g * per + k] - w[g * per + k]) <= step / 2 * (1 + 1e-5));
            }
        }
    }
    CHECK(n == expected);
    CHECK(checked == expected);
    CHECK_THROWS_AS(quantize_weights(m.graph, 1), Error);
}

TEST_CASE("re-initialisation touches only matching parameters, with the builders' distributions") {
    Model m = build_model("small", 10, 32, 1);
    const Model before = m;
    const int n = reinitialize(m.graph, "^segs\\.3\\.layers\\.4\\.|segs\\.2\\.layers\\.2\\.c1\\.weight", 77);
    CHECK(n == 3);  // final linear weight and bias, one conv
    for (size_t i = 0; i < m.graph.nodes.size(); ++i) {
        const Node& a = m.graph.nodes[i];
        if (a.op != Op::Constant) continue;
        const bool same = a.value.values() == before.graph.nodes[i].value.values();
        const bool hit = a.name.rfind("segs.3.layers.4.", 0) == 0 || a.name == "segs.2.layers.2.c1.weight";
        CHECK_MESSAGE(same != hit, a.name);
    }
    const Tensor& conv = m.graph.nodes[m.graph.find("segs.2.layers.2.c1.weight")].value;  // [64, 32, 3, 3]
    double s2 = 0;
    for (float v : conv.values()) s2 += double(v) * v;
    const double sd = std::sqrt(s2 / conv.numel()), want = std::sqrt(2.0 / (64 * 9));
    CHECK(sd == doctest::Approx(want).epsilon(0.05));
    const Tensor& fc = m.graph.nodes[m.graph.find("segs.3.layers.4.weight")].value;  // [10, 64]
    for (float v : fc.values()) CHECK(std::abs(v) <= 1.0f / 8.0f);
    CHECK_THROWS_AS(reinitialize(m.graph, "no_such_parameter", 1), Error);
}

TEST_CASE("ic-only trains the internal classifiers and leaves the backbone bit-identical") {
    Model m = build_model("tiny", 10, 16, 5);
    const Model before = m;
    Dataset data = synthetic(64, 16, 9);
    TrainConfig c = quick_config();
    c.mode = "ic-only";
    {
        Trainer trainer(m, data, nullptr, c);
        for (int i : trainer.parameters()) CHECK(m.graph.nodes[i].name.find(".ic.") != std::string::npos);
        trainer.fit();
    }
    int changed_ic = 0;
    for (size_t i = 0; i < m.graph.nodes.size(); ++i) {
        const Node& a = m.graph.nodes[i];
        if (a.op != Op::Constant) continue;
        CHECK(a.trainable == before.graph.nodes[i].trainable);  // flags restored
        const bool same = a.value.values() == before.graph.nodes[i].value.values();
        if (a.name.find(".ic.") == std::string::npos)
            CHECK_MESSAGE(same, a.name);  // BN statistics too
        else
            changed_ic += !same;
    }
    CHECK(changed_ic >= 2);
}

TEST_CASE("--train-only: only matching parameters change") {
    Model m = build_model("tiny", 10, 16, 5);
    const Model before = m;
    Dataset data = synthetic(64, 16, 9);
    TrainConfig c = quick_config();
    c.mode = "plain";
    c.train_only = "^segs\\.2\\.";
    { Trainer(m, data, nullptr, c).fit(); }
    for (size_t i = 0; i < m.graph.nodes.size(); ++i) {
        const Node& a = m.graph.nodes[i];
        if (!a.trainable) continue;
        const bool same = a.value.values() == before.graph.nodes[i].value.values();
        CHECK_MESSAGE(same == (a.name.rfind("segs.2.", 0) != 0), a.name);
    }
    c.train_only = "nothing_matches";
    CHECK_THROWS_AS(Trainer(m, data, nullptr, c), Error);
}

TEST_CASE("PGD stays within eps and [0, 1], raises the loss, and restores trainable flags") {
    Model m = build_model("tiny", 10, 16, 2);
    auto backend = make_backend("native");
    const int n = 8;
    Plan plan(m, *backend, n, true);
    Dataset d = synthetic(n, 16, 12);
    std::vector<float> x = d.images.values(), x0 = x;
    auto loss = [&](const std::vector<float>& img) {
        plan.run_all(img.data(), n, false);
        return softmax_cross_entropy(plan.exit_logits(2).data, d.labels.data(), n, 10, nullptr);
    };
    const double clean = loss(x0);
    PgdConfig c;
    std::mt19937_64 rng(3);
    pgd_attack(plan, m, x.data(), d.labels.data(), n, final_exit_weights(3), c, rng);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        worst = std::max(worst, double(std::abs(x[i] - x0[i])));
        CHECK((x[i] >= 0.0f && x[i] <= 1.0f));
    }
    CHECK(worst <= c.eps * (1 + 1e-6));
    CHECK(worst > c.eps / 2);
    CHECK(loss(x) > clean);
    int trainable = 0;
    for (const auto& node : m.graph.nodes) trainable += node.trainable;
    CHECK(trainable == int(trainable_nodes(build_model("tiny", 10, 16, 2).graph).size()));
}

TEST_CASE("TRADES: beta 0 is cross-entropy, equal logits add nothing, gradients against finite differences") {
    const int n = 3, classes = 5;
    std::vector<float> zc = test::random_tensor(Shape{n, classes}, 13, -2, 2).values();
    std::vector<float> za = test::random_tensor(Shape{n, classes}, 14, -3, 3).values();
    const int labels[] = {0, 4, 2};
    CHECK(trades_loss(zc.data(), za.data(), labels, n, classes, 0, nullptr, nullptr) ==
          doctest::Approx(softmax_cross_entropy(zc.data(), labels, n, classes, nullptr)));
    CHECK(trades_loss(zc.data(), zc.data(), labels, n, classes, 6, nullptr, nullptr) ==
          doctest::Approx(softmax_cross_entropy(zc.data(), labels, n, classes, nullptr)));
    std::vector<float> gc(zc.size()), ga(za.size());
    trades_loss(zc.data(), za.data(), labels, n, classes, 2.5f, gc.data(), ga.data(), 0.8f);
    auto f = [&] { return 0.8 * trades_loss(zc.data(), za.data(), labels, n, classes, 2.5f, nullptr, nullptr); };
    CHECK(max_rel_error(gc, numeric_grad(zc, f)) < 1e-3);
    CHECK(max_rel_error(ga, numeric_grad(za, f)) < 1e-3);
}

TEST_CASE("TRADES attack stays within eps and [0, 1] and moves the answers away from the clean ones") {
    Model m = build_model("tiny", 10, 16, 2);
    auto backend = make_backend("native");
    const int n = 8;
    Plan plan(m, *backend, n, true);
    Dataset d = synthetic(n, 16, 15);
    std::vector<float> x = d.images.values(), x0 = x;
    auto logits = [&](const std::vector<float>& img) {
        plan.run_all(img.data(), n, false);
        TensorView z = plan.exit_logits(2);
        return std::vector<float>(z.data, z.data + z.numel());
    };
    const auto clean = logits(x0);
    const int labels[n] = {};
    auto divergence = [&](const std::vector<float>& img) {  // the KL part of the TRADES loss
        const auto adv = logits(img);
        return trades_loss(clean.data(), adv.data(), labels, n, 10, 1, nullptr, nullptr) -
               softmax_cross_entropy(clean.data(), labels, n, 10, nullptr);
    };
    PgdConfig c;
    std::mt19937_64 rng(4);
    trades_attack(plan, m, x.data(), n, final_exit_weights(3), c, rng);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        worst = std::max(worst, double(std::abs(x[i] - x0[i])));
        CHECK((x[i] >= 0.0f && x[i] <= 1.0f));
    }
    CHECK(worst <= c.eps * (1 + 1e-6));
    CHECK(worst > c.eps / 2);
    CHECK(divergence(x0) == doctest::Approx(0).epsilon(1e-6));
    CHECK(divergence(x) > 1e-3);
    int trainable = 0;
    for (const auto& node : m.graph.nodes) trainable += node.trainable;
    CHECK(trainable == int(trainable_nodes(build_model("tiny", 10, 16, 2).graph).size()));
}

TEST_CASE("same seed and thread count give bit-identical weights; training changes them") {
    Dataset data = synthetic(256, 16, 1);
    std::vector<std::string> backends = {"native"};
#ifdef ENGINE_WITH_ONEDNN
    backends.push_back("onednn");
#endif
    for (const auto& backend : backends) {
        CAPTURE(backend);
        TrainConfig config = quick_config();
        config.backend = backend;
        config.threads = 2;
        Model a = build_model("tiny", 10, 16, 7), b = build_model("tiny", 10, 16, 7);
        const auto initial = all_values(a);
        { Trainer(a, data, nullptr, config).fit(); }
        { Trainer(b, data, nullptr, config).fit(); }
        CHECK(same_bytes(all_values(a), all_values(b)));
        CHECK(!same_bytes(all_values(a), initial));
    }
    Model a = build_model("tiny", 10, 16, 7);
    { Trainer(a, data, nullptr, quick_config()).fit(); }
    Model c = build_model("tiny", 10, 16, 7);
    TrainConfig other = quick_config();
    other.seed = 12;  // another data order and augmentation
    { Trainer(c, data, nullptr, other).fit(); }
    CHECK(!same_bytes(all_values(a), all_values(c)));
}

TEST_CASE("a diverging run stops with an error naming the step instead of training on NaN") {
    Dataset data = synthetic(256, 16, 1);
    Model m = build_model("tiny", 10, 16, 7);
    TrainConfig config = quick_config();
    config.schedule.kind = "constant";
    config.schedule.lr = 1e30f;
    CHECK_THROWS_WITH_AS(Trainer(m, data, nullptr, config).fit(), doctest::Contains("loss is not finite at step"),
                         engine::Error);
}

TEST_CASE("resume: 2 epochs straight equal 1 epoch, checkpoint, a new trainer, 1 more epoch") {
    Dataset data = synthetic(192, 16, 2);
    TrainConfig c = quick_config(2);
    c.optimizer.kind = "adam";  // two state tensors per parameter
    c.schedule.lr = 0.003f;
    c.prune = 0.2;
    const std::string ckpt = temp_path("resume.ckpt"), log = temp_path("resume.jsonl");
    Model straight = build_model("tiny", 10, 16, 8);
    { Trainer(straight, data, nullptr, c).fit(); }

    Model resumed = build_model("tiny", 10, 16, 8);
    c.checkpoint_path = ckpt;
    c.log_path = log;
    {
        Trainer first(resumed, data, &data, c);
        auto stats = first.fit(1);
        REQUIRE(stats.size() == 1);
        CHECK(first.epochs_done() == 1);
        CHECK(stats[0].test_acc.size() == 3);
    }
    Model fresh = build_model("tiny", 10, 16, 8);
    {
        Trainer second(fresh, data, &data, c);
        second.load_checkpoint(ckpt);
        CHECK(second.epochs_done() == 1);
        CHECK(second.history().size() == 1);
        second.fit();
        CHECK(second.finished());
    }
    CHECK(same_bytes(all_values(straight), all_values(fresh)));
    // Two log lines, one per epoch.
    std::ifstream in(log);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) lines += line.find("\"test_acc\"") != std::string::npos;
    CHECK(lines == 2);

    // A checkpoint refuses another configuration, naming what differs, and leaves the model alone.
    TrainConfig other = c;
    other.schedule.lr = 0.01f;
    Model m = build_model("tiny", 10, 16, 8);
    const auto values = all_values(m);
    Trainer t(m, data, nullptr, other);
    try {
        t.load_checkpoint(ckpt);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("schedule.lr") != std::string::npos);
    }
    CHECK(t.epochs_done() == 0);
    std::filesystem::remove_all(std::filesystem::path(ckpt).parent_path());
}

TEST_CASE("knowledge distillation from a teacher, PGD and TRADES training run and change the weights") {
    Dataset data = synthetic(64, 16, 3);
    Model teacher = build_model("tiny", 10, 16, 1);
    Model m = build_model("tiny", 10, 16, 2);
    const auto initial = all_values(m);
    TrainConfig c = quick_config();
    c.adversarial = true;
    c.pgd.steps = 2;
    {
        Trainer t(m, data, nullptr, c, &teacher);
        auto s = t.fit();
        CHECK(std::isfinite(s[0].train_loss));
    }
    CHECK(!same_bytes(all_values(m), initial));
    Model wrong = build_model("tiny", 7, 16, 1);
    CHECK_THROWS_AS(Trainer(m, data, nullptr, c, &wrong), Error);  // 7 classes vs 10
    TrainConfig t = quick_config();
    t.trades = true;
    t.pgd.steps = 2;
    const auto before_trades = all_values(m);
    {
        Trainer trainer(m, data, nullptr, t);
        CHECK(std::isfinite(trainer.fit()[0].train_loss));
    }
    CHECK(!same_bytes(all_values(m), before_trades));
    CHECK_THROWS_AS(Trainer(m, data, nullptr, t, &teacher), Error);  // TRADES with a teacher
}

TEST_CASE("soft cross-entropy: one-hot targets give cross-entropy; gradient against finite differences") {
    const int n = 3, classes = 5;
    std::vector<float> z = test::random_tensor(Shape{n, classes}, 8, -3, 3).values();
    const int labels[] = {2, 0, 4};
    std::vector<float> onehot(n * classes, 0.0f);
    for (int r = 0; r < n; ++r) onehot[r * classes + labels[r]] = 1;
    int agree = -1, correct = -1;
    CHECK(soft_cross_entropy(z.data(), onehot.data(), n, classes, nullptr, 1, &agree) ==
          doctest::Approx(softmax_cross_entropy(z.data(), labels, n, classes, nullptr, 1, &correct)));
    CHECK(agree == correct);
    std::vector<float> t = test::random_tensor(Shape{n, classes}, 9, 0.1f, 1).values();
    for (int r = 0; r < n; ++r) {  // rows of a distribution
        float sum = 0;
        for (int c = 0; c < classes; ++c) sum += t[r * classes + c];
        for (int c = 0; c < classes; ++c) t[r * classes + c] /= sum;
    }
    std::vector<float> g(z.size());
    soft_cross_entropy(z.data(), t.data(), n, classes, g.data(), 0.6f);
    auto num = numeric_grad(z, [&] { return 0.6 * soft_cross_entropy(z.data(), t.data(), n, classes, nullptr); });
    CHECK(max_rel_error(g, num) < 1e-3);
}

TEST_CASE("exit mimicry targets: the victim's answer from its exit on, held under threshold before it") {
    // Three exits, four classes, two samples. Sample 0 is confident at exit 1 (threshold 0.8),
    // sample 1 at no internal exit, so it answers at the last.
    const int n = 2, classes = 4;
    const std::vector<float> thresholds{0.9f, 0.8f, 0.9f};
    const std::vector<float> e0{0, 1, 0, 0, /**/ 0, 0, 1, 0};
    const std::vector<float> e1{0, 4, 0, 0, /**/ 0, 0, 0.5f, 0};
    const std::vector<float> e2{0, 5, 0, 0, /**/ 0, 0, 3, 0};
    const std::vector<const float*> logits{e0.data(), e1.data(), e2.data()};
    const MimicTargets t = exit_mimicry_targets(logits, n, classes, thresholds, 0.1f);
    CHECK(t.victim_exit == exits_under_policy(logits, n, classes, thresholds));
    REQUIRE(t.victim_exit == std::vector<int>{1, 2});
    std::vector<double> p(classes);
    for (int i = 0; i < n; ++i) {
        const int e = t.victim_exit[i];
        softmax_row(logits[e] + i * classes, classes, p.data());  // the answer the attacker saw
        for (int k = 0; k < 3; ++k) {
            const float* row = t.per_exit[k].data() + i * classes;
            double sum = 0;
            for (int c = 0; c < classes; ++c) sum += row[c];
            CHECK(sum == doctest::Approx(1).epsilon(1e-6));
            CHECK(top_class(row, classes).cls == top_class(logits[e] + i * classes, classes).cls);
            const float top = *std::max_element(row, row + classes);
            if (k >= e) {
                for (int c = 0; c < classes; ++c) CHECK(row[c] == doctest::Approx(p[c]).epsilon(1e-6));
            } else if (p[top_class(logits[e] + i * classes, classes).cls] > thresholds[k] - 0.1f) {
                CHECK(top == doctest::Approx(thresholds[k] - 0.1f).epsilon(1e-5));
            }
        }
    }
    CHECK_THROWS_AS(exit_mimicry_targets(logits, n, classes, {0.9f, 0.9f}), Error);
}

TEST_CASE("stealing by exit mimicry: the copy learns the victim's answers and exits without labels") {
    Dataset data = quadrants(256, 16, 21);
    Model victim = build_model("tiny", 10, 16, 1);
    Trainer(victim, data, nullptr, quick_config(6)).fit();
    auto ref = make_backend("ref", 1);
    // Thresholds at each internal exit's median top probability, so that the victim uses every exit.
    auto run = [&](const Model& m) {
        Plan plan(m, *ref, int(data.size()));
        plan.run_all(data.images.data(), int(data.size()));
        std::vector<std::vector<float>> z;
        for (int k = 0; k < m.num_exits(); ++k) {
            TensorView v = plan.exit_logits(k);
            z.emplace_back(v.data, v.data + v.numel());
        }
        return z;
    };
    auto vz = run(victim);
    for (int k = 0; k + 1 < victim.num_exits(); ++k) {
        std::vector<float> top;
        for (int i = 0; i < data.size(); ++i) top.push_back(top_class(vz[k].data() + i * 10, 10).prob);
        std::nth_element(top.begin(), top.begin() + top.size() / 2, top.end());
        victim.thresholds[k] = top[top.size() / 2];
    }
    auto agreement = [&](const Model& copy) {  // fraction of samples with the victim's exit, and answer
        auto cz = run(copy);
        std::vector<const float*> vp, cp;
        for (auto& z : vz) vp.push_back(z.data());
        for (auto& z : cz) cp.push_back(z.data());
        auto ve = exits_under_policy(vp, int(data.size()), 10, victim.thresholds);
        auto ce = exits_under_policy(cp, int(data.size()), 10, victim.thresholds);
        int exits = 0, answers = 0;
        for (int i = 0; i < data.size(); ++i) {
            exits += ve[i] == ce[i];
            answers += top_class(vp[ve[i]] + i * 10, 10).cls == top_class(cp[ce[i]] + i * 10, 10).cls;
        }
        return std::pair{double(exits) / data.size(), double(answers) / data.size()};
    };
    // The same copy trained twice on unlabeled images: by exit mimicry, and (the control) by plain
    // distillation from the victim's final exit. Only the first learns where the victim exits.
    Dataset unlabeled = data;
    for (auto& y : unlabeled.labels) y = 0;
    auto steal = [&](bool mimic) {
        Model copy = build_model("tiny", 10, 16, 5);
        copy.thresholds = victim.thresholds;
        TrainConfig c = quick_config(12);
        c.augment.enabled = false;
        c.mimic_exits = mimic;
        c.kd_alpha = 1;  // distillation alone: the zero labels play no part
        Trainer(copy, unlabeled, nullptr, c, &victim).fit();
        return agreement(copy);
    };
    const auto before = agreement(build_model("tiny", 10, 16, 5));
    const auto mimicked = steal(true), distilled = steal(false);
    MESSAGE("exit agreement: untrained " << before.first << ", distilled " << distilled.first << ", mimicked "
                                         << mimicked.first << "; answer agreement " << before.second << ", "
                                         << distilled.second << ", " << mimicked.second);
    CHECK(mimicked.first > before.first + 0.15);
    CHECK(mimicked.first > distilled.first + 0.1);
    CHECK(mimicked.second > before.second + 0.5);
    TrainConfig c = quick_config(1);
    c.mimic_exits = true;
    Model other = build_model("small", 10, 16, 1);
    REQUIRE(other.num_exits() != victim.num_exits());
    CHECK_THROWS_AS(Trainer(other, data, nullptr, c, &victim), Error);
    Model copy = build_model("tiny", 10, 16, 5);
    CHECK_THROWS_AS(Trainer(copy, data, nullptr, c), Error);  // no victim to steal from
}

TEST_CASE("a tiny model trained for two epochs on 3000 CIFAR-10 images beats chance clearly") {
    if (!test::have_shared("CIFAR-10 training")) return;
    Dataset train = load_cifar(test::shared_dir() + "/data/cifar10", true, 10, 3000);
    Dataset test_set = load_cifar(test::shared_dir() + "/data/cifar10", false, 10, 1000);
    Model m = build_model("tiny", 10, 32, 1);
    TrainConfig c;
    c.mode = "sdn";
    c.epochs = 2;
    c.batch = 32;
    c.schedule.lr = 0.1f;
    c.optimizer.weight_decay = 5e-4f;
    c.augment.enabled = false;
    Trainer t(m, train, &test_set, c);
    auto stats = t.fit();
    REQUIRE(stats.size() == 2);
    MESSAGE("final-exit test accuracy " << stats[1].test_acc.back() << ", train accuracy " << stats[0].train_acc
                                        << " then " << stats[1].train_acc << ", " << stats[1].images_per_s
                                        << " images/s");
    CHECK(stats[1].train_acc > stats[0].train_acc);  // (the SDN loss itself grows with its IC weights)
    CHECK(stats[1].test_acc.back() > 0.2);           // chance is 0.1; 1000 test images
}
