// A one-node graph per op case, run through a Plan, so that op tests exercise the executor too.
#pragma once
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/plan.h"
#include "test_util.h"

namespace test {

struct OpCase {
    std::string label;
    engine::Op op;
    engine::Attrs attrs;
    std::vector<engine::Shape> shapes;  // input 0 is the graph input; the rest are trainable constants
    bool training = false;              // BatchNorm batch statistics, Dropout masks
    float away_from_zero = 0;           // keep |input| above this (kinks of ReLU and max)
};

inline engine::Model one_node_model(const OpCase& c, uint32_t seed) {
    engine::Model m;
    auto& g = m.graph;
    engine::Node in;
    in.op = engine::Op::Input;
    in.name = "x";
    in.input_dims = c.shapes[0].vec();
    std::vector<int> ids{g.add(in)};
    for (size_t i = 1; i < c.shapes.size(); ++i) {
        auto t = random_tensor(c.shapes[i], seed + 17 * uint32_t(i), -1, 1);
        if (c.op == engine::Op::BatchNorm && i == 4)  // variance must be positive
            for (auto& v : t.values()) v = 0.5f + v * v;
        if (c.op == engine::Op::Div && i == 1)  // keep divisors away from zero
            for (auto& v : t.values()) v = v < 0 ? v - 0.5f : v + 0.5f;
        ids.push_back(g.add_constant("p" + std::to_string(i), t, true));
    }
    int out = g.add_op(c.op, c.label, ids, c.attrs);
    g.outputs = {out};
    m.thresholds = {1.0f};
    return m;
}

inline engine::Tensor case_input(const OpCase& c, uint32_t seed) {
    auto x = random_tensor(c.shapes[0], seed, -1, 1);
    for (auto& v : x.values())
        if (std::abs(v) < c.away_from_zero) v += v < 0 ? -c.away_from_zero : c.away_from_zero;
    return x;
}

inline engine::Attrs conv_attrs(int k, int stride, int pad, int groups = 1, int dilation = 1) {
    engine::Attrs a;
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    for (auto& p : a.pad) p = pad;
    a.groups = groups;
    a.dilation[0] = a.dilation[1] = dilation;
    return a;
}

// x -> Conv(w[, b]) [-> Add(., r)] [-> Relu] with padding w/2 (3x3: 1, 1x1: none); r is a second graph
// input shaped like the convolution's output.
inline engine::Model conv_block_model(const engine::Shape& x, const engine::Shape& w, bool bias, bool residual,
                                      bool relu, uint32_t seed, int groups = 1, int stride = 1) {
    using namespace engine;
    const int pad = int(w[2] / 2);
    Model m;
    Graph& g = m.graph;
    Node in;
    in.op = Op::Input;
    in.name = "x";
    in.input_dims = x.vec();
    std::vector<int> conv_in{g.add(in)};
    conv_in.push_back(g.add_constant("w", random_tensor(w, seed + 1), true));
    if (bias) conv_in.push_back(g.add_constant("b", random_tensor(Shape{w[0]}, seed + 2), true));
    int y = g.add_op(Op::Conv, "conv", conv_in, conv_attrs(int(w[2]), stride, pad, groups));
    if (residual) {
        Node r;
        r.op = Op::Input;
        r.name = "r";
        r.input_dims = {x[0], w[0], (x[2] + 2 * pad - w[2]) / stride + 1, (x[3] + 2 * pad - w[3]) / stride + 1};
        y = g.add_op(Op::Add, "add", {y, g.add(r)});
    }
    if (relu) y = g.add_op(Op::Relu, "relu", {y});
    g.outputs = {y};
    m.thresholds = {1.0f};
    return m;
}

struct OpResult {
    engine::Tensor out, input_grad;
    std::vector<engine::Tensor> param_grads;
};

inline engine::Tensor copy_of(engine::TensorView v) {
    return engine::Tensor(v.shape, std::vector<float>(v.data, v.data + v.numel()));
}

// The first exit's output of an inference plan (fused epilogues where the backend fuses) on inputs.
inline engine::Tensor run_inference(const engine::Model& m, engine::Backend& backend,
                                    const std::vector<engine::Tensor>& inputs) {
    const int n = int(inputs[0].shape()[0]);
    engine::Plan plan(m, backend, n);
    std::vector<const float*> ptrs;
    for (const engine::Tensor& t : inputs) ptrs.push_back(t.data());
    plan.run_all(ptrs.data(), n);
    return copy_of(plan.exit_logits(0));
}

// One node through a keep_all plan: forward, then backward from a random output gradient.
// `inspect` sees the model while the plan that ran it still exists (backends key state by node).
inline OpResult run_op_case(const OpCase& c, engine::Backend& backend, uint32_t seed,
                            const std::function<void(const engine::Model&, int)>& inspect = {}) {
    engine::Model m = one_node_model(c, seed);
    engine::Tensor x = case_input(c, seed);
    const int n = int(c.shapes[0][0]);
    engine::Tensor r = random_tensor(m.graph.infer_shapes(n).back(), seed + 99);
    engine::Plan plan(m, backend, n, /*keep_all=*/true);
    plan.run_all(x.data(), n, c.training, 7);
    OpResult res;
    res.out = copy_of(plan.exit_logits(0));
    // A backward from another seed first: the second must rewrite every gradient, not add to or keep it.
    engine::Tensor other = random_tensor(r.shape(), seed + 98);
    const float* other_seeds[] = {other.data()};
    plan.backward(other_seeds, true, c.training, 7);
    const float* seeds[] = {r.data()};
    plan.backward(seeds, true, c.training, 7);
    res.input_grad = copy_of(plan.input_grad());
    for (size_t i = 1; i < c.shapes.size(); ++i) res.param_grads.push_back(copy_of(plan.param_grad(int(i))));
    if (inspect) inspect(m, n);
    return res;
}

// The same case run on two backends: output, input gradient and every parameter gradient agree
// within `tolerance` (norm-wise relative error).
inline void check_same_result(const OpResult& want, const OpResult& got, double tolerance) {
    using engine::relative_error;
    REQUIRE(want.out.shape() == got.out.shape());
    CHECK(relative_error(got.out.data(), want.out.data(), want.out.numel()) <= tolerance);
    CHECK(relative_error(got.input_grad.data(), want.input_grad.data(), want.input_grad.numel()) <= tolerance);
    REQUIRE(want.param_grads.size() == got.param_grads.size());
    for (size_t i = 0; i < want.param_grads.size(); ++i) {
        CAPTURE(i);
        CHECK(relative_error(got.param_grads[i].data(), want.param_grads[i].data(), want.param_grads[i].numel()) <=
              tolerance);
    }
}

// Element-wise ops above the native backend's 32K elements, where it splits them between threads:
// too large for finite differences, compared with the reference loops only.
inline std::vector<OpCase> large_elementwise_cases() {
    using engine::Op;
    using engine::Shape;
    return {{"relu_large", Op::Relu, {}, {Shape{2, 16, 32, 33}}, false, 0.05f},
            {"add_large", Op::Add, {}, {Shape{2, 16, 32, 33}, Shape{2, 16, 32, 33}}},
            {"mul_scalar_large", Op::Mul, {}, {Shape{2, 16, 32, 33}, Shape{1}}}};
}

// Every op, with the shapes and attributes that stress its index arithmetic.
inline std::vector<OpCase> all_op_cases() {
    using engine::Op;
    using engine::Shape;
    std::vector<OpCase> cases;
    cases.push_back({"conv3x3", Op::Conv, conv_attrs(3, 1, 1), {Shape{2, 3, 6, 5}, Shape{4, 3, 3, 3}, Shape{4}}});
    cases.push_back({"conv_stride2_nobias", Op::Conv, conv_attrs(3, 2, 1), {Shape{2, 4, 7, 7}, Shape{5, 4, 3, 3}}});
    // One-group convolutions other than the direct 3x3 kernel's run on pre-packed weights in the
    // native backend's GEMM: rows off the 6-row panels, a depth past one 256-deep block, dilation.
    cases.push_back({"conv1x1", Op::Conv, conv_attrs(1, 1, 0), {Shape{2, 20, 5, 7}, Shape{13, 20, 1, 1}, Shape{13}}});
    cases.push_back({"conv1x1_deep", Op::Conv, conv_attrs(1, 1, 0), {Shape{1, 260, 1, 3}, Shape{7, 260, 1, 1}}});
    cases.push_back(
        {"conv_dilated", Op::Conv, conv_attrs(3, 1, 2, 1, 2), {Shape{2, 3, 7, 7}, Shape{4, 3, 3, 3}, Shape{4}}});
    // The backward takes samples on planes under 256 pixels several at a time: all in one product, in
    // chunks of 2 with a remainder, and one at a time.
    cases.push_back(
        {"conv1x1_2x2", Op::Conv, conv_attrs(1, 1, 0), {Shape{5, 24, 2, 2}, Shape{40, 24, 1, 1}, Shape{40}}});
    cases.push_back({"conv1x1_chunks", Op::Conv, conv_attrs(1, 1, 0), {Shape{7, 6, 10, 10}, Shape{5, 6, 1, 1}}});
    cases.push_back(
        {"conv1x1_plane272", Op::Conv, conv_attrs(1, 1, 0), {Shape{2, 3, 17, 16}, Shape{4, 3, 1, 1}, Shape{4}}});
    cases.push_back(
        {"conv1x1_stride2", Op::Conv, conv_attrs(1, 2, 0), {Shape{2, 4, 6, 6}, Shape{3, 4, 1, 1}, Shape{3}}});
    cases.push_back(
        {"conv_depthwise", Op::Conv, conv_attrs(3, 1, 1, 4), {Shape{2, 4, 5, 5}, Shape{4, 1, 3, 3}, Shape{4}}});
    cases.push_back({"conv_depthwise_s2", Op::Conv, conv_attrs(3, 2, 1, 3), {Shape{1, 3, 6, 6}, Shape{3, 1, 3, 3}}});
    // Wide enough for the native 8-wide depthwise loop, with a scalar tail.
    cases.push_back(
        {"conv_depthwise_wide", Op::Conv, conv_attrs(3, 1, 1, 3), {Shape{2, 3, 10, 19}, Shape{3, 1, 3, 3}, Shape{3}}});
    cases.push_back(
        {"conv_depthwise_s2_wide", Op::Conv, conv_attrs(3, 2, 1, 2), {Shape{1, 2, 20, 36}, Shape{2, 1, 3, 3}}});
    // Rows of 13 (8-wide, 4-wide and scalar parts) and, at stride 2, of 4 (the 4-wide loop alone).
    cases.push_back(
        {"conv_depthwise_w13", Op::Conv, conv_attrs(3, 1, 1, 2), {Shape{1, 2, 6, 13}, Shape{2, 1, 3, 3}, Shape{2}}});
    cases.push_back({"conv_depthwise_s2_w4", Op::Conv, conv_attrs(3, 2, 1, 3), {Shape{2, 3, 8, 8}, Shape{3, 1, 3, 3}}});
    // Dilated and 5x5 strided depthwise: the backward plane kernel's padded geometry (odd sizes, rows
    // and columns that no window reads).
    cases.push_back(
        {"conv_depthwise_dil2", Op::Conv, conv_attrs(3, 1, 2, 3, 2), {Shape{1, 3, 7, 9}, Shape{3, 1, 3, 3}, Shape{3}}});
    cases.push_back(
        {"conv_depthwise_k5_s2", Op::Conv, conv_attrs(5, 2, 1, 2), {Shape{2, 2, 9, 12}, Shape{2, 1, 5, 5}}});
    cases.push_back(
        {"conv_groups2_dil2", Op::Conv, conv_attrs(3, 1, 2, 2, 2), {Shape{2, 4, 6, 6}, Shape{6, 2, 3, 3}, Shape{6}}});
    engine::Attrs bn;
    bn.epsilon = 1e-3f;
    cases.push_back({"batchnorm", Op::BatchNorm, bn, {Shape{2, 3, 4, 4}, Shape{3}, Shape{3}, Shape{3}, Shape{3}}});
    cases.push_back(
        {"batchnorm_train", Op::BatchNorm, bn, {Shape{3, 3, 4, 4}, Shape{3}, Shape{3}, Shape{3}, Shape{3}}, true});
    // Small planes: the native kernels take up to 16 adjacent channels together, here a group of 16 and one of 4.
    cases.push_back({"batchnorm_train_groups",
                     Op::BatchNorm,
                     bn,
                     {Shape{2, 20, 2, 2}, Shape{20}, Shape{20}, Shape{20}, Shape{20}},
                     true});
    cases.push_back({"relu", Op::Relu, {}, {Shape{2, 3, 4, 4}}, false, 0.05f});
    cases.push_back({"add_same", Op::Add, {}, {Shape{2, 3, 4}, Shape{2, 3, 4}}});
    cases.push_back({"add_bcast", Op::Add, {}, {Shape{2, 3, 4}, Shape{3, 1}}});
    cases.push_back({"sub_bcast", Op::Sub, {}, {Shape{2, 3, 2, 2}, Shape{1, 3, 1, 1}}});
    cases.push_back({"mul_scalar", Op::Mul, {}, {Shape{2, 5}, Shape{1}}});
    cases.push_back({"mul_bcast", Op::Mul, {}, {Shape{2, 3, 4}, Shape{4}}});
    cases.push_back({"div_bcast", Op::Div, {}, {Shape{2, 3, 2, 2}, Shape{3, 1, 1}}});
    engine::Attrs pad;
    pad.pads = {0, 0, 1, 2, 0, 1, 0, 1};
    pad.pad_value = 0.5f;
    cases.push_back({"pad", Op::Pad, pad, {Shape{2, 2, 3, 3}}});
    cases.push_back({"maxpool", Op::MaxPool, conv_attrs(2, 2, 0), {Shape{2, 3, 6, 6}}});
    cases.push_back({"maxpool_pad_s1", Op::MaxPool, conv_attrs(3, 1, 1), {Shape{1, 2, 5, 5}}});
    cases.push_back({"avgpool", Op::AvgPool, conv_attrs(2, 2, 0), {Shape{2, 3, 6, 6}}});
    // Tiling windows run natively: a last row and column no window reads, 3x3 means.
    cases.push_back({"maxpool_7x7", Op::MaxPool, conv_attrs(2, 2, 0), {Shape{2, 3, 7, 7}}});
    cases.push_back({"avgpool_3x3", Op::AvgPool, conv_attrs(3, 3, 0), {Shape{2, 3, 7, 6}}});
    auto avg_pad = conv_attrs(3, 2, 1);
    cases.push_back({"avgpool_pad_exclude", Op::AvgPool, avg_pad, {Shape{1, 2, 5, 5}}});
    avg_pad.count_include_pad = true;
    cases.push_back({"avgpool_pad_include", Op::AvgPool, avg_pad, {Shape{1, 2, 5, 5}}});
    cases.push_back({"mixedpool", Op::MixedPool, conv_attrs(2, 2, 0), {Shape{2, 3, 8, 8}, Shape{1}}});
    cases.push_back({"mixedpool_ragged", Op::MixedPool, conv_attrs(2, 2, 0), {Shape{2, 3, 9, 7}, Shape{1}}});
    cases.push_back({"mixedpool_overlap", Op::MixedPool, conv_attrs(3, 2, 0), {Shape{1, 2, 7, 7}, Shape{1}}});
    cases.push_back({"globalavgpool", Op::GlobalAvgPool, {}, {Shape{2, 3, 4, 5}}});
    engine::Attrs flat;
    flat.axis = 1;
    cases.push_back({"flatten", Op::Flatten, flat, {Shape{2, 3, 2, 2}}});
    engine::Attrs gemm;
    gemm.trans_b = true;
    cases.push_back({"gemm_transb_bias", Op::Gemm, gemm, {Shape{3, 5}, Shape{4, 5}, Shape{4}}});
    // The packed GEMM's panel edges: 6 rows, 16 columns, a depth past one 256-deep block.
    cases.push_back({"gemm_transb_bias_large", Op::Gemm, gemm, {Shape{2, 260}, Shape{19, 260}, Shape{19}}});
    cases.push_back({"gemm_nobias", Op::Gemm, {}, {Shape{7, 9}, Shape{9, 17}}});
    engine::Attrs gemm2;
    gemm2.alpha = 0.5f;
    gemm2.beta = 2.0f;
    cases.push_back({"gemm_alpha_beta", Op::Gemm, gemm2, {Shape{3, 5}, Shape{5, 2}, Shape{3, 2}}});
    engine::Attrs sm;
    sm.axis = 1;
    cases.push_back({"softmax", Op::Softmax, sm, {Shape{3, 6}}});
    engine::Attrs sm2;
    sm2.axis = 1;
    cases.push_back({"softmax_inner", Op::Softmax, sm2, {Shape{2, 4, 3}}});
    engine::Attrs drop;
    drop.ratio = 0.3f;
    cases.push_back({"dropout_train", Op::Dropout, drop, {Shape{4, 8}}, true});
    return cases;
}

}  // namespace test
