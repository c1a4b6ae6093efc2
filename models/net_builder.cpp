#include "net_builder.h"

#include <cmath>

#include "engine/error.h"

namespace engine::zoo {

namespace {

int64_t conv_out(int64_t in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

}  // namespace

float NetBuilder::uniform(float lo, float hi) {
    // 24 random bits -> [0, 1): exact in float and independent of the standard library.
    float u = static_cast<float>(rng_() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

float NetBuilder::normal() {
    // Box-Muller on two uniforms in (0, 1]; std::normal_distribution differs between libraries.
    double u1 = (static_cast<double>(rng_() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

int NetBuilder::parameter(const std::string& name, Shape shape, bool trainable, float fill) {
    check(graph_.find(name) < 0, "model builder: duplicate node name '" + name + "'");
    return graph_.add_constant(name, Tensor(shape, fill), trainable);
}

Feat NetBuilder::input(int64_t channels, int64_t size) {
    Node n;
    n.op = Op::Input;
    n.name = "image";
    n.input_dims = {-1, channels, size, size};
    return {graph_.add(std::move(n)), channels, size, size};
}

Feat NetBuilder::normalize(const std::string& name, Feat x, const std::vector<float>& mean,
                           const std::vector<float>& std) {
    check(static_cast<int64_t>(mean.size()) == x.c && static_cast<int64_t>(std.size()) == x.c,
          "model builder: normalisation constants do not match " + std::to_string(x.c) + " channels");
    int m = graph_.add_constant(name + ".mean", Tensor(Shape{1, x.c, 1, 1}, mean), false);
    int s = graph_.add_constant(name + ".std", Tensor(Shape{1, x.c, 1, 1}, std), false);
    int sub = graph_.add_op(Op::Sub, name + ".sub", {x.node, m});
    return {graph_.add_op(Op::Div, name + ".div", {sub, s}), x.c, x.h, x.w};
}

Feat NetBuilder::conv(const std::string& name, Feat x, int64_t out, int k, int stride, int pad, int groups) {
    check(x.c % groups == 0 && out % groups == 0, "model builder: " + name + ": channels do not divide into groups");
    int w = parameter(name + ".weight", Shape{out, x.c / groups, k, k}, true, 0);
    // He-normal with fan_out = out * k * k, as PyTorch's kaiming_normal_(mode='fan_out') in SDN.
    float sd = std::sqrt(2.0f / static_cast<float>(out * k * k));
    for (float& v : graph_.nodes[w].value.values()) v = sd * normal();
    Attrs a;
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    a.groups = groups;
    int node = graph_.add_op(Op::Conv, name, {x.node, w}, a);
    return {node, out, conv_out(x.h, k, stride, pad), conv_out(x.w, k, stride, pad)};
}

Feat NetBuilder::batch_norm(const std::string& name, Feat x) {
    int scale = parameter(name + ".weight", Shape{x.c}, true, 1.0f);
    int bias = parameter(name + ".bias", Shape{x.c}, true, 0.0f);
    int mean = parameter(name + ".running_mean", Shape{x.c}, false, 0.0f);
    int var = parameter(name + ".running_var", Shape{x.c}, false, 1.0f);
    return {graph_.add_op(Op::BatchNorm, name, {x.node, scale, bias, mean, var}), x.c, x.h, x.w};
}

Feat NetBuilder::relu(const std::string& name, Feat x) {
    return {graph_.add_op(Op::Relu, name, {x.node}), x.c, x.h, x.w};
}

Feat NetBuilder::add(const std::string& name, Feat a, Feat b) {
    check(a.c == b.c && a.h == b.h && a.w == b.w, "model builder: " + name + ": residual shapes differ");
    return {graph_.add_op(Op::Add, name, {a.node, b.node}), a.c, a.h, a.w};
}

Feat NetBuilder::max_pool(const std::string& name, Feat x, int k) {
    Attrs a;
    a.kernel[0] = a.kernel[1] = a.stride[0] = a.stride[1] = k;
    return {graph_.add_op(Op::MaxPool, name, {x.node}, a), x.c, x.h / k, x.w / k};
}

Feat NetBuilder::avg_pool(const std::string& name, Feat x, int k) {
    Attrs a;
    a.kernel[0] = a.kernel[1] = a.stride[0] = a.stride[1] = k;
    return {graph_.add_op(Op::AvgPool, name, {x.node}, a), x.c, x.h / k, x.w / k};
}

Feat NetBuilder::global_avg_pool(const std::string& name, Feat x) {
    return {graph_.add_op(Op::GlobalAvgPool, name, {x.node}), x.c, 1, 1};
}

Feat NetBuilder::flatten(const std::string& name, Feat x) {
    Attrs a;
    a.axis = 1;
    return {graph_.add_op(Op::Flatten, name, {x.node}, a), x.c * x.h * x.w, 1, 1};
}

Feat NetBuilder::dropout(const std::string& name, Feat x, float ratio) {
    Attrs a;
    a.ratio = ratio;
    return {graph_.add_op(Op::Dropout, name, {x.node}, a), x.c, x.h, x.w};
}

Feat NetBuilder::linear(const std::string& name, Feat x, int64_t out) {
    check(x.h == 1 && x.w == 1, "model builder: " + name + ": linear layer needs a flattened input");
    const int64_t in = x.c;
    float bound = 1.0f / std::sqrt(static_cast<float>(in));
    int w = parameter(name + ".weight", Shape{out, in}, true, 0);
    for (float& v : graph_.nodes[w].value.values()) v = uniform(-bound, bound);
    int b = parameter(name + ".bias", Shape{out}, true, 0);
    for (float& v : graph_.nodes[b].value.values()) v = uniform(-bound, bound);
    Attrs a;
    a.trans_b = true;
    return {graph_.add_op(Op::Gemm, name, {x.node, w, b}, a), out, 1, 1};
}

Feat NetBuilder::conv_bn_relu(const std::string& name, Feat x, int64_t out, int k, int stride, int pad, int groups) {
    x = conv(name + ".0", x, out, k, stride, pad, groups);
    x = batch_norm(name + ".1", x);
    return relu(name + ".2", x);
}

Feat NetBuilder::basic_block(const std::string& name, Feat x, int64_t out, int stride) {
    Feat y = conv(name + ".c1", x, out, 3, stride, 1);
    y = batch_norm(name + ".b1", y);
    y = relu(name + ".relu", y);
    y = conv(name + ".c2", y, out, 3, 1, 1);
    y = batch_norm(name + ".b2", y);
    Feat shortcut = x;
    if (stride != 1 || x.c != out) {
        shortcut = conv(name + ".sc.0", x, out, 1, stride, 0);
        shortcut = batch_norm(name + ".sc.1", shortcut);
    }
    return add(name + ".add", y, shortcut);
}

void NetBuilder::add_exit(int node) {
    graph_.output_names.push_back("exit" + std::to_string(graph_.outputs.size()));
    graph_.outputs.push_back(node);
}

Model NetBuilder::finish(std::map<std::string, std::string> metadata) {
    Model m;
    m.graph = std::move(graph_);
    m.set_threshold(0.9f);
    m.metadata = std::move(metadata);
    m.validate();
    return m;
}

}  // namespace engine::zoo
