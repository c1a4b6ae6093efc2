// SDN mixed-pooling heads, alpha*MaxPool(x) + (1-alpha)*AvgPool(x) in the ONNX files, become one
// MixedPool node with one trainable alpha at import. Hand-built heads check where fusion applies
// and that both the fused and the unfused import compute what the file says (against plain loops
// here); the shared models check the heads' count and their parameters against the PyTorch state dict.
#include "engine/config.h"
#include <doctest/doctest.h>

#include <cstdio>

#ifdef ENGINE_WITH_ONNX
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "engine/backend.h"
#include "engine/plan.h"
#include "engine/safetensors.h"
#include "onnx_builder.h"
#include "test_util.h"

using namespace test;
using engine::Op;

namespace {

// One head as an exporter writes it, with knobs that each break one fusion condition.
struct Head {
    int64_t side = 5;  // input is [N, 2, side, side]
    float alpha = 0.3f, c = 0.7f;
    std::vector<int64_t> max_kernel{2, 2}, avg_kernel{2, 2};
    std::vector<int64_t> pads{0, 0, 0, 0};                      // both pools
    std::vector<int64_t> pre_pad = std::vector<int64_t>(8, 0);  // the Pad before the AvgPool
    int64_t ceil_mode = 0;
    bool swap = false;      // Mul(pool, scale) and Add(avg term, max term)
    bool read_max = false;  // the MaxPool output is also an exit (through a Flatten)
};

void pool_node(OnnxBuilder& b, const char* op, const std::string& in, const std::string& out,
               const std::vector<int64_t>& kernel, const Head& h) {
    auto* n = b.node(op, {in}, out);
    set_ints(n, "kernel_shape", kernel);
    set_ints(n, "strides", {2, 2});
    set_ints(n, "pads", h.pads);
    set_int(n, "ceil_mode", h.ceil_mode);
}

OnnxBuilder head_model(const Head& h) {
    OnnxBuilder b(13);
    b.input("x", {-1, 2, h.side, h.side});
    b.init("head.alpha", {1}, {h.alpha});
    b.init("c", {1}, {h.c});
    b.init("zeros", {8}, std::vector<float>(h.pre_pad.begin(), h.pre_pad.end()));
    pool_node(b, "MaxPool", "x", "mx", h.max_kernel, h);
    b.node("Mul", h.swap ? std::vector<std::string>{"mx", "head.alpha"} : std::vector<std::string>{"head.alpha", "mx"},
           "ma");
    b.node("Pad", {"x", "zeros"}, "xp");
    pool_node(b, "AveragePool", "xp", "av", h.avg_kernel, h);
    b.node("Mul", h.swap ? std::vector<std::string>{"av", "c"} : std::vector<std::string>{"c", "av"}, "ca");
    b.node("Add", h.swap ? std::vector<std::string>{"ca", "ma"} : std::vector<std::string>{"ma", "ca"}, "s");
    b.node("Flatten", {"s"}, "y");
    b.output("y");
    if (h.read_max) {
        b.node("Flatten", {"mx"}, "mxf");
        b.output("mxf");
    }
    return b;
}

// Pooling over one plane the way ONNX defines it (count_include_pad = 0: padding is not counted).
std::vector<float> pool_plane(const std::vector<float>& x, int64_t side, const std::vector<int64_t>& k,
                              const std::vector<int64_t>& pads, bool ceil_mode, bool max) {
    auto out_size = [&](int d) {
        const int64_t span = side + pads[d] + pads[d + 2] - k[d];
        int64_t o = (ceil_mode ? (span + 1) / 2 : span / 2) + 1;
        if (ceil_mode && (o - 1) * 2 >= side + pads[d]) --o;  // a window must start inside
        return o;
    };
    const int64_t oh = out_size(0), ow = out_size(1);
    std::vector<float> y;
    for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
            float m = -std::numeric_limits<float>::infinity();
            double sum = 0;
            int count = 0;
            for (int64_t r = i * 2 - pads[0]; r < i * 2 - pads[0] + k[0]; ++r)
                for (int64_t q = j * 2 - pads[1]; q < j * 2 - pads[1] + k[1]; ++q) {
                    if (r < 0 || r >= side || q < 0 || q >= side) continue;
                    m = std::max(m, x[r * side + q]);
                    sum += x[r * side + q];
                    ++count;
                }
            y.push_back(max ? m : float(sum / count));
        }
    return y;
}

// What the head model computes, for a batch of inputs [n, 2, side, side].
std::vector<float> expected(const Head& h, const engine::Tensor& x) {
    const int64_t planes = x.shape()[0] * x.shape()[1], hw = h.side * h.side;
    const int64_t ps = h.side + h.pre_pad[2] + h.pre_pad[6];  // the Pad's output side (begin, end of dims 2, 3)
    REQUIRE(h.side + h.pre_pad[3] + h.pre_pad[7] == ps);
    std::vector<float> y;
    for (int64_t p = 0; p < planes; ++p) {
        std::vector<float> plane(x.data() + p * hw, x.data() + (p + 1) * hw), padded(ps * ps, 0.0f);
        for (int64_t r = 0; r < h.side; ++r)
            for (int64_t q = 0; q < h.side; ++q)
                padded[(r + h.pre_pad[2]) * ps + q + h.pre_pad[3]] = plane[r * h.side + q];
        const auto mx = pool_plane(plane, h.side, h.max_kernel, h.pads, h.ceil_mode, true);
        const auto av = pool_plane(padded, ps, h.avg_kernel, h.pads, h.ceil_mode, false);
        REQUIRE(mx.size() == av.size());
        for (size_t i = 0; i < mx.size(); ++i) y.push_back(h.alpha * mx[i] + h.c * av[i]);
    }
    return y;
}

int count(const engine::Model& m, Op op) {
    return static_cast<int>(
        std::count_if(m.graph.nodes.begin(), m.graph.nodes.end(), [&](const auto& n) { return n.op == op; }));
}

// Imports the head, checks whether it was fused and compares its exit with plain loops on the reference backend.
void check_head(const Head& h, const std::string& tag, bool fuse) {
    OnnxBuilder b = head_model(h);
    const engine::Model m = import(b, tag);
    CHECK(count(m, Op::MixedPool) == (fuse ? 1 : 0));
    for (Op op : {Op::MaxPool, Op::AvgPool, Op::Mul, Op::Add})
        CHECK(count(m, op) == (fuse ? 0 : op == Op::Mul ? 2 : 1));
    bool has_c = false;
    for (const auto& n : m.graph.nodes) has_c = has_c || n.name == "c";
    CHECK(has_c == !fuse);  // the fused head keeps no separate 1 - alpha
    if (fuse) {
        const auto& mp = only(m, Op::MixedPool);
        REQUIRE(mp.inputs.size() == 2);
        CHECK(mp.inputs[0] == m.graph.inputs[0]);
        const auto& alpha = m.graph.nodes[mp.inputs[1]];
        CHECK(alpha.name == "head.alpha");
        CHECK(alpha.trainable);
        CHECK(alpha.value[0] == h.alpha);
        CHECK(std::vector<int64_t>(mp.attrs.kernel, mp.attrs.kernel + 2) == h.max_kernel);
        CHECK(std::vector<int64_t>(mp.attrs.pad, mp.attrs.pad + 4) == h.pads);
        CHECK(m.graph.nodes.size() == 4);  // x, alpha, MixedPool, Flatten
    }
    const engine::Tensor x = random_tensor({3, 2, h.side, h.side}, 7);
    const std::vector<float> want = expected(h, x);
    auto backend = engine::make_backend("ref");
    engine::Plan plan(m, *backend, 3);
    plan.run_all(x.data(), 3);
    const engine::TensorView y = plan.exit_logits(0);
    REQUIRE(y.numel() == static_cast<int64_t>(want.size()));
    CHECK(engine::relative_error(y.data, want.data(), y.numel()) <= 1e-5);
}

}  // namespace

TEST_CASE("onnx import fuses SDN mixed-pooling heads into MixedPool") {
    SUBCASE("as PyTorch exports them, with a Pad of zeros before the AvgPool") { check_head({}, "plain", true); }
    SUBCASE("operands in the other order, padded windows, alpha outside [0, 1]") {
        Head h;
        h.swap = true;
        h.max_kernel = h.avg_kernel = {3, 3};
        h.pads = {1, 1, 1, 1};
        h.alpha = -0.25f, h.c = 1.25f;
        check_head(h, "swap", true);
    }
    SUBCASE("c within 1e-6 of 1 - alpha") {
        Head h;
        h.alpha = 0.375f, h.c = 0.625f + 9e-7f;
        check_head(h, "near", true);
    }
}

TEST_CASE("onnx import leaves heads that are not mixed pooling unfused, and correct") {
    SUBCASE("c further than 1e-6 from 1 - alpha") {
        Head h;
        h.alpha = 0.375f, h.c = 0.625f + 2e-6f;
        check_head(h, "far", false);
    }
    SUBCASE("c unrelated to alpha") {
        Head h;
        h.c = 0.71f;
        check_head(h, "mismatch", false);
    }
    SUBCASE("different kernels") {
        Head h;
        h.avg_kernel = {3, 3};  // same output size on a side of 5
        check_head(h, "kernels", false);
    }
    SUBCASE("ceil_mode") {
        Head h;
        h.ceil_mode = 1;
        check_head(h, "ceil", false);
    }
    SUBCASE("the MaxPool output has another reader") {
        Head h;
        h.read_max = true;
        check_head(h, "shared", false);
    }
    SUBCASE("a Pad that pads before the AvgPool") {
        Head h;
        h.side = 4;
        h.pre_pad = {0, 0, 1, 1, 0, 0, 0, 0};  // 5 x 5 into the AvgPool: the same 2 x 2 output
        check_head(h, "prepad", false);
    }
}

TEST_CASE("shared models: one trainable alpha per head, parameters as in the PyTorch state dict") {
    if (!test::have_shared("shared ONNX fusion")) return;
    struct Shared {
        const char* name;
        int heads;     // internal classifiers that pool (feature maps wider than 4)
        int avgpools;  // AvgPools outside the heads
    };
    // MobileNet's later ICs read maps of side 4 and 2 and do not pool: their alphas are unused
    // in PyTorch and absent from the ONNX file.
    for (const Shared s : {Shared{"resnet56_s1", 6, 0}, Shared{"mobilenet_s1", 2, 1}, Shared{"resnet56_s3", 6, 0}}) {
        CAPTURE(s.name);
        const std::string dir = test::shared_dir() + "/models/";
        const engine::Model m = engine::import_onnx(dir + s.name + ".onnx");
        const auto sd = engine::read_safetensors(dir + s.name + ".safetensors");
        CHECK(count(m, Op::MixedPool) == s.heads);
        CHECK(count(m, Op::Mul) == 0);  // the heads were the files' only Muls
        CHECK(count(m, Op::MaxPool) == 0);
        CHECK(count(m, Op::AvgPool) == s.avgpools);

        // Each head reads its own trainable alpha, equal to the state dict's "<segment>.ic.alpha".
        std::set<int> alphas;
        std::set<std::string> used_keys;
        for (const auto& n : m.graph.nodes) {
            if (n.op != Op::MixedPool) continue;
            const auto& a = m.graph.nodes[n.inputs[1]];
            CHECK(a.op == Op::Constant);
            CHECK(a.trainable);
            alphas.insert(n.inputs[1]);
            std::string key;
            for (const auto& [k, t] : sd)
                if (a.name == k || (a.name.size() > k.size() && a.name.ends_with("." + k))) key = k;
            CHECK_MESSAGE(key.ends_with(".ic.alpha"), a.name);
            if (key.empty()) continue;
            used_keys.insert(key);
            CHECK(sd.at(key)[0] == a.value[0]);
        }
        CHECK(static_cast<int>(alphas.size()) == s.heads);
        // No 1 - alpha left: the only one-element constants are the alphas.
        for (int i = 0; i < static_cast<int>(m.graph.nodes.size()); ++i)
            if (m.graph.is_constant(i) && m.graph.nodes[i].value.numel() == 1)
                CHECK_MESSAGE(alphas.count(i), m.graph.nodes[i].name);

        // Trainable scalars: the state dict less BatchNorm's statistics, less BatchNorm's scale (the
        // fold merges scale into the conv weight and shift into its bias), less the input
        // normalisation buffers, less the alphas of heads that do not pool.
        std::set<std::string> bn;  // BatchNorm module prefixes
        for (const auto& [k, t] : sd)
            if (k.ends_with(".running_mean")) bn.insert(k.substr(0, k.size() - 13));
        int64_t want = 0;
        int unused_alphas = 0;
        for (const auto& [k, t] : sd) {
            const std::string prefix = k.substr(0, k.rfind('.')), leaf = k.substr(k.rfind('.') + 1);
            if (bn.count(prefix) &&
                (leaf == "running_mean" || leaf == "running_var" || leaf == "num_batches_tracked" || leaf == "weight"))
                continue;
            if (leaf == "mean" || leaf == "std") continue;
            if (leaf == "alpha" && !used_keys.count(k)) {
                ++unused_alphas;
                continue;
            }
            want += t.numel();
        }
        CHECK(unused_alphas == m.num_exits() - 1 - s.heads);  // every other internal classifier has one
        int64_t got = 0;
        for (const auto& n : m.graph.nodes)
            if (n.op == Op::Constant && n.trainable) got += n.value.numel();
        CHECK(got == want);
        CHECK(count(m, Op::BatchNorm) == 0);  // folded, so the comparison above holds
    }
}

#else
TEST_CASE("onnx fusion") { test::skip("onnx fusion", "built without ONNX import"); }
#endif
