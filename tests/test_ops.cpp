// Every op: the default CPU backend against the reference loops, forward and backward.
#include <doctest/doctest.h>

#include "op_cases.h"

using namespace engine;


TEST_CASE("native backend matches the reference loops for every op, forward and backward") {
    auto ref = make_backend("ref");
    auto cpu = make_backend("native");
    auto cases = test::all_op_cases();
    for (const auto& c : test::large_elementwise_cases()) cases.push_back(c);
    for (const auto& c : cases) {
        CAPTURE(c.label);
        test::check_same_result(test::run_op_case(c, *ref, 11), test::run_op_case(c, *cpu, 11), 1e-5);
    }
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
