// A tiny two-exit CNN built with the Graph API, for tests of model files, the C API and fuzz
// seeds (no dependency on the model builders):
//   image -> conv(+bias) -> batchnorm -> relu -> [gap -> flatten -> gemm: exit0]
//                                           \-> conv stride 2 -> relu -> maxpool -> [gap -> flatten -> gemm: exit1]
#pragma once
#include <random>
#include <string>

#include "engine/model.h"

namespace test {

inline engine::Model tiny_model(uint32_t seed = 1, int64_t side = 8, int classes = 10) {
    using namespace engine;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
    auto rand = [&](Shape s) {
        Tensor t(s);
        for (auto& v : t.values()) v = dist(rng);
        return t;
    };
    Model m;
    Graph& g = m.graph;
    Node in;
    in.op = Op::Input;
    in.name = "image";
    in.input_dims = {-1, 3, side, side};
    int x = g.add(in);

    Attrs c3;
    c3.kernel[0] = c3.kernel[1] = 3;
    c3.pad[0] = c3.pad[1] = c3.pad[2] = c3.pad[3] = 1;
    int w1 = g.add_constant("conv1.weight", rand({4, 3, 3, 3}), true);
    int b1 = g.add_constant("conv1.bias", rand({4}), true);
    x = g.add_op(Op::Conv, "conv1", {x, w1, b1}, c3);
    Tensor var = rand({4});
    for (auto& v : var.values()) v = 1.0f + v;  // positive variances
    int bn_s = g.add_constant("bn1.weight", rand({4}), true);
    int bn_b = g.add_constant("bn1.bias", rand({4}), true);
    int bn_m = g.add_constant("bn1.running_mean", rand({4}), false);
    int bn_v = g.add_constant("bn1.running_var", var, false);
    Attrs bn;
    bn.epsilon = 1e-3f;
    x = g.add_op(Op::BatchNorm, "bn1", {x, bn_s, bn_b, bn_m, bn_v}, bn);
    int r1 = g.add_op(Op::Relu, "relu1", {x});

    Attrs gemm;
    gemm.trans_b = true;
    auto head = [&](int from, int64_t channels, const std::string& name) {
        int p = g.add_op(Op::GlobalAvgPool, name + ".gap", {from});
        Attrs flat;
        flat.axis = 1;
        int f = g.add_op(Op::Flatten, name + ".flatten", {p}, flat);
        int w = g.add_constant(name + ".fc.weight", rand({classes, channels}), true);
        int b = g.add_constant(name + ".fc.bias", rand({classes}), true);
        return g.add_op(Op::Gemm, name + ".fc", {f, w, b}, gemm);
    };
    int exit0 = head(r1, 4, "ic0");

    Attrs c3s2 = c3;
    c3s2.stride[0] = c3s2.stride[1] = 2;
    int w2 = g.add_constant("conv2.weight", rand({6, 4, 3, 3}), true);
    x = g.add_op(Op::Conv, "conv2", {r1, w2}, c3s2);
    x = g.add_op(Op::Relu, "relu2", {x});
    Attrs pool;
    pool.kernel[0] = pool.kernel[1] = 2;
    pool.stride[0] = pool.stride[1] = 2;
    x = g.add_op(Op::MaxPool, "pool2", {x}, pool);
    int exit1 = head(x, 6, "final");

    g.outputs = {exit0, exit1};
    g.output_names = {"exit0", "exit1"};
    m.thresholds = {0.6f, 1.0f};
    m.metadata = {{"arch", "tiny"}, {"seed", std::to_string(seed)}};
    return m;
}

}  // namespace test
