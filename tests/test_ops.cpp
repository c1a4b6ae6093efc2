// Every op on every backend against the reference loops, forward and backward.
#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <string>

#include "op_cases.h"

using namespace engine;

TEST_CASE("every backend matches the reference loops for every op, forward and backward") {
    auto ref = make_backend("ref");
    auto cases = test::all_op_cases();
    for (const auto& c : test::large_elementwise_cases()) cases.push_back(c);
    std::vector<test::OpResult> want;
    for (const auto& c : cases) want.push_back(test::run_op_case(c, *ref, 11));
    int compared = 0;
    for (const std::string& name : test::backends()) {
        if (name == "ref") continue;
        auto backend = make_backend(name);
        for (size_t i = 0; i < cases.size(); ++i) {
            CAPTURE(name);
            CAPTURE(cases[i].label);
            test::check_same_result(want[i], test::run_op_case(cases[i], *backend, 11), test::tolerance(name));
            ++compared;
        }
    }
    CHECK(compared >= int(cases.size()));  // at least the native backend ran every case
}

TEST_CASE("hand-computed values") {
    auto ref = make_backend("ref");
    SUBCASE("3x3 convolution with padding sums the neighbourhood") {
        test::OpCase c{"conv", Op::Conv, test::conv_attrs(3, 1, 1), {Shape{1, 1, 3, 3}, Shape{1, 1, 3, 3}}};
        Model m = test::one_node_model(c, 1);
        for (auto& v : m.graph.nodes[1].value.values()) v = 1.0f;
        Tensor x(Shape{1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
        Plan plan(m, *ref, 1);
        plan.run_all(x.data(), 1);
        TensorView y = plan.exit_logits(0);
        // corners: 1+2+4+5 = 12; centre: 45; top middle: 1+2+3+4+5+6 = 21
        CHECK(y[0] == 12.0f);
        CHECK(y[4] == 45.0f);
        CHECK(y[1] == 21.0f);
    }
    SUBCASE("mixed pooling blends max and mean by alpha") {
        test::OpCase c{"mix", Op::MixedPool, test::conv_attrs(2, 2, 0), {Shape{1, 1, 2, 2}, Shape{1}}};
        Model m = test::one_node_model(c, 1);
        m.graph.nodes[1].value[0] = 0.25f;
        Tensor x(Shape{1, 1, 2, 2}, {1, 2, 3, 6});
        Plan plan(m, *ref, 1);
        plan.run_all(x.data(), 1);
        CHECK(plan.exit_logits(0)[0] == doctest::Approx(0.25 * 6 + 0.75 * 3));
    }
    SUBCASE("softmax of equal logits is uniform") {
        test::OpCase c{"sm", Op::Softmax, {}, {Shape{1, 4}}};
        Model m = test::one_node_model(c, 1);
        Tensor x(Shape{1, 4}, 3.0f);
        Plan plan(m, *ref, 1);
        plan.run_all(x.data(), 1);
        for (int i = 0; i < 4; ++i) CHECK(plan.exit_logits(0)[i] == doctest::Approx(0.25));
    }
}

TEST_CASE("every op has its own name, and the name maps back to the op") {
    std::set<std::string> seen;
    for (int i = 0; i < int(Op::Count); ++i) {
        const Op op = static_cast<Op>(i);
        const std::string name = op_name(op);
        CAPTURE(i);
        CHECK(name != "?");
        CHECK(seen.insert(name).second);
        CHECK(op_from_name(name) == op);
    }
    CHECK(op_from_name("NoSuchOp") == Op::Count);
}

TEST_CASE("native pooling of windows narrower than a vector: each window's max and mean in row order, to the bit") {
    // 4x4 windows on 16x16 planes and 2x2 on 8x8 (as the SDN heads pool: four to a vector, one lane
    // each), and 3x3 (one at a time); 8x8 windows on 32x32 a row of a window to a vector. Each window
    // must give the scalar loop below: the first maximum; the sum from zero in row order (8x8: only the
    // max, its sum having another order); the mean as the sum times 1 / count; mixed pooling as
    // fma(alpha, max, (1 - alpha) mean).
    auto native = make_backend("native", 2);
    struct Case {
        Op op;
        int k;
        Shape x;
    };
    for (const Case& c : {Case{Op::MaxPool, 4, Shape{2, 5, 16, 16}}, Case{Op::AvgPool, 4, Shape{2, 5, 16, 16}},
                          Case{Op::MixedPool, 4, Shape{2, 5, 16, 16}}, Case{Op::MaxPool, 2, Shape{3, 4, 8, 8}},
                          Case{Op::AvgPool, 2, Shape{3, 4, 8, 8}}, Case{Op::MixedPool, 2, Shape{3, 4, 8, 8}},
                          Case{Op::AvgPool, 3, Shape{1, 3, 9, 9}}, Case{Op::MaxPool, 3, Shape{1, 3, 9, 9}},
                          Case{Op::MixedPool, 3, Shape{1, 3, 9, 9}}, Case{Op::MaxPool, 8, Shape{1, 3, 32, 32}}}) {
        CAPTURE(std::string(op_name(c.op)));
        CAPTURE(c.x.str());
        test::OpCase oc{"pool", c.op, test::conv_attrs(c.k, c.k, 0), {c.x}};
        if (c.op == Op::MixedPool) oc.shapes.push_back(Shape{1});
        const float alpha = test::random_tensor(Shape{1}, 21 + 17, -1, 1).data()[0];  // one_node_model's
        const Tensor x = test::case_input(oc, 21);
        const test::OpResult got = test::run_op_case(oc, *native, 21);
        const int64_t H = c.x[2], W = c.x[3], OH = H / c.k, OW = W / c.k;
        std::vector<float> want;
        for (int64_t p = 0; p < c.x[0] * c.x[1]; ++p)
            for (int64_t oh = 0; oh < OH; ++oh)
                for (int64_t ow = 0; ow < OW; ++ow) {
                    const float* win = x.data() + p * H * W + oh * c.k * W + ow * c.k;
                    float mx = win[0], sum = 0.0f;
                    for (int i = 0; i < c.k; ++i)
                        for (int j = 0; j < c.k; ++j) {
                            const float v = win[i * W + j];
                            mx = v > mx ? v : mx;
                            sum += v;
                        }
                    const float mean = sum * (1.0f / float(c.k * c.k));
                    want.push_back(c.op == Op::MaxPool   ? mx
                                   : c.op == Op::AvgPool ? mean
                                                         : std::fma(alpha, mx, (1 - alpha) * mean));
                }
        REQUIRE(int64_t(want.size()) == got.out.numel());
        CHECK(std::equal(want.begin(), want.end(), got.out.data()));
    }
}

TEST_CASE("native classifier heads give each sample's logits the same bits alone and in a batch") {
    // Each dot product keeps one order whatever the batch: 1,003 features give 32-wide steps, an
    // 8-wide one and a scalar tail.
    auto native = make_backend("native", 2), ref = make_backend("ref");
    Attrs gemm;
    gemm.trans_b = true;
    const int64_t K = 1003, classes = 10;
    const test::OpCase batch{"head", Op::Gemm, gemm, {Shape{5, K}, Shape{classes, K}, Shape{classes}}};
    const Tensor x = test::case_input(batch, 31);
    const Tensor all = test::run_inference(test::one_node_model(batch, 31), *native, {x});
    CHECK(relative_error(all.data(), test::run_inference(test::one_node_model(batch, 31), *ref, {x}).data(),
                         all.numel()) <= 1e-5);
    const test::OpCase single{"head", Op::Gemm, gemm, {Shape{1, K}, Shape{classes, K}, Shape{classes}}};
    for (int64_t i = 0; i < 5; ++i) {
        CAPTURE(i);
        const Tensor one(Shape{1, K}, std::vector<float>(x.data() + i * K, x.data() + (i + 1) * K));
        const Tensor alone = test::run_inference(test::one_node_model(single, 31), *native, {one});
        CHECK(std::equal(alone.data(), alone.data() + classes, all.data() + i * classes));
    }
}
