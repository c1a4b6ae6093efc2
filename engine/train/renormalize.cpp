#include <algorithm>
#include <cmath>

#include "engine/batchnorm_fold.h"
#include "engine/error.h"
#include "engine/plan.h"
#include "engine/train/renormalize.h"

namespace engine::train {

namespace {

// `base`, or "base#k" for the first k that names no node of a or b.
std::string unused_name(const Graph& a, const Graph& b, const std::string& base) {
    std::string name = base;
    for (int k = 1; a.find(name) >= 0 || b.find(name) >= 0; ++k) name = base + "#" + std::to_string(k);
    return name;
}

// Rescaling a weight or bias that another node also reads would change that node too.
bool owns_parameters(const Graph& g, const std::vector<int>& consumers, const Node& conv) {
    for (size_t k = 1; k < conv.inputs.size(); ++k)
        if (!g.is_constant(conv.inputs[k]) || consumers[conv.inputs[k]] != 1) return false;
    return true;
}

struct ChannelMoments {
    std::vector<double> mean, var;  // of w*x, the convolution's output less its bias
};

ChannelMoments moments_from(const std::vector<double>& sum, const std::vector<double>& sum_sq, int64_t count) {
    ChannelMoments m{std::vector<double>(sum.size()), std::vector<double>(sum.size())};
    for (size_t k = 0; k < sum.size(); ++k) {
        m.mean[k] = sum[k] / double(count);
        m.var[k] = std::max(0.0, sum_sq[k] / double(count) - m.mean[k] * m.mean[k]);
    }
    return m;
}

// Per-channel moments of each listed convolution over the first `images` samples, inference mode.
std::vector<ChannelMoments> conv_moments(const Model& model, const std::vector<int>& convs, const Dataset& data,
                                         int images, Backend& backend) {
    const int64_t count = std::min<int64_t>(images, data.size());
    check(count >= 1, "renormalize: no images to estimate the BatchNorm statistics from");
    const int batch = int(std::min<int64_t>(128, count));
    Plan plan(model, backend, batch, /*keep_all=*/true);
    const int64_t per_sample = data.images.numel() / data.size();
    std::vector<std::vector<double>> sum(convs.size()), sum_sq(convs.size());
    std::vector<int64_t> seen(convs.size(), 0);
    for (int64_t at = 0; at < count; at += batch) {
        const int n = int(std::min<int64_t>(batch, count - at));
        plan.run_all(data.images.data() + at * per_sample, n, false);
        for (size_t c = 0; c < convs.size(); ++c) {
            const Node& conv = model.graph.nodes[convs[c]];
            const TensorView y = plan.value(convs[c]);
            const int64_t K = y.shape[1], inner = y.numel() / (int64_t(n) * K);
            const float* bias = conv.inputs.size() > 2 ? model.graph.nodes[conv.inputs[2]].value.data() : nullptr;
            sum[c].resize(size_t(K), 0.0);
            sum_sq[c].resize(size_t(K), 0.0);
            for (int64_t r = 0; r < n; ++r)
                for (int64_t k = 0; k < K; ++k) {
                    const float* row = y.data + (r * K + k) * inner;
                    const double b = bias ? bias[k] : 0.0;  // subtracted exactly: a dead channel has variance 0
                    double s = 0, s2 = 0;
                    for (int64_t i = 0; i < inner; ++i) {
                        const double v = row[i] - b;
                        s += v;
                        s2 += v * v;
                    }
                    sum[c][k] += s;
                    sum_sq[c][k] += s2;
                }
            seen[c] += int64_t(n) * inner;
        }
    }
    std::vector<ChannelMoments> out;
    for (size_t c = 0; c < convs.size(); ++c) out.push_back(moments_from(sum[c], sum_sq[c], seen[c]));
    return out;
}

// Appends to `out` the BatchNorm after convolution `conv` (an index into out) that makes the
// rescaled convolution compute what it computed before in inference mode; returns its index.
int add_renormalizing_batchnorm(Graph& out, const Graph& original, int conv, const ChannelMoments& mo) {
    const Node c = out.nodes[conv];
    Tensor& w = out.nodes[c.inputs[1]].value;
    Tensor* bias = c.inputs.size() > 2 ? &out.nodes[c.inputs[2]].value : nullptr;
    const bool trainable = out.nodes[c.inputs[1]].trainable;
    const int64_t K = w.shape()[0], per_k = w.numel() / K;
    Attrs a;  // default epsilon and momentum, as a PyTorch BatchNorm2d
    Tensor gamma(Shape{K}), beta(Shape{K}), mean(Shape{K}), var(Shape{K});
    for (int64_t k = 0; k < K; ++k) {
        // A dead channel (variance 0) keeps its scale: there is nothing to normalise.
        const double sigma = mo.var[k] > 0 ? std::sqrt(mo.var[k]) : 1.0;
        for (int64_t e = 0; e < per_k; ++e) w[k * per_k + e] = float(w[k * per_k + e] / sigma);
        mean[k] = float(mo.mean[k] / sigma);
        var[k] = float(mo.var[k] / (sigma * sigma));
        // (y' - mean) * gamma / sqrt(var + eps) + beta = w*x + b for y' = w*x / sigma.
        gamma[k] = float(sigma * std::sqrt(double(var[k]) + a.epsilon));
        beta[k] = float((bias ? (*bias)[k] : 0.0) + mo.mean[k]);
        if (bias) (*bias)[k] = 0.0f;
    }
    const std::string base = unused_name(original, out, c.name + ".bn");
    const int g = out.add_constant(base + ".weight", std::move(gamma), trainable);
    const int b = out.add_constant(base + ".bias", std::move(beta), trainable);
    const int m = out.add_constant(base + ".running_mean", std::move(mean), false);
    const int v = out.add_constant(base + ".running_var", std::move(var), false);
    return out.add_op(Op::BatchNorm, base, {conv, g, b, m, v}, a);
}

}  // namespace

std::vector<int> insert_batchnorms(Model& model, const Dataset& data, int images, Backend& backend) {
    const Graph& g = model.graph;
    const std::vector<int> consumers = g.consumer_counts();
    std::vector<char> has_batchnorm(g.nodes.size(), 0);
    for (const Node& n : g.nodes)
        if (n.op == Op::BatchNorm) has_batchnorm[n.inputs[0]] = 1;
    std::vector<int> convs;
    for (size_t i = 0; i < g.nodes.size(); ++i)
        if (g.nodes[i].op == Op::Conv && !has_batchnorm[i] && owns_parameters(g, consumers, g.nodes[i]))
            convs.push_back(int(i));
    if (convs.empty()) return {};
    const std::vector<ChannelMoments> moments = conv_moments(model, convs, data, images, backend);

    Graph out;
    std::vector<int> map(g.nodes.size(), -1), inserted;
    size_t next = 0;  // into convs
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        Node n = g.nodes[i];
        for (int& j : n.inputs) j = map[j];
        map[i] = out.add(std::move(n));
        if (next < convs.size() && convs[next] == int(i)) {
            map[i] = add_renormalizing_batchnorm(out, g, map[i], moments[next++]);
            inserted.push_back(map[i]);
        }
    }
    out.inputs.clear();
    for (int i : g.inputs) out.inputs.push_back(map[i]);
    for (int o : g.outputs) out.outputs.push_back(map[o]);
    out.output_names = g.output_names;
    out.validate();
    model.graph = std::move(out);
    return inserted;
}

void fold_batchnorms(Graph& g, const std::vector<int>& batchnorms) {
    const std::vector<int> consumers = g.consumer_counts();
    std::vector<char> drop(g.nodes.size(), 0);
    std::vector<int> batchnorm_of(g.nodes.size(), -1);  // per Conv
    for (int j : batchnorms) {
        check(j >= 0 && size_t(j) < g.nodes.size() && g.nodes[j].op == Op::BatchNorm,
              "fold_batchnorms: node " + std::to_string(j) + " is not a BatchNorm");
        const Node& bn = g.nodes[j];
        const std::string where = "fold_batchnorms: BatchNorm '" + bn.name + "'";
        const int p = bn.inputs[0];
        check(g.nodes[p].op == Op::Conv && consumers[p] == 1, where + ": its input is not a Conv read by it alone");
        check(owns_parameters(g, consumers, g.nodes[p]),
              where + ": its Conv's weight or bias is not a Constant of its own");
        for (int k = 1; k < 5; ++k) {
            check(g.is_constant(bn.inputs[k]) && consumers[bn.inputs[k]] == 1,
                  where + ": parameter " + std::to_string(k) + " is not a Constant of its own");
            drop[bn.inputs[k]] = 1;
        }
        drop[j] = 1;
        batchnorm_of[p] = j;
    }
    Graph out;
    std::vector<int> map(g.nodes.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& src = g.nodes[i];
        if (drop[i]) {
            if (src.op == Op::BatchNorm) map[i] = map[src.inputs[0]];  // its readers now read the Conv
            continue;
        }
        Node n = src;
        for (int& j : n.inputs) j = map[j];
        if (const int j = batchnorm_of[i]; j >= 0) {
            const Node& bn = g.nodes[j];
            if (n.inputs.size() < 3) {
                const Node& w = out.nodes[n.inputs[1]];
                Tensor zeros(Shape{w.value.shape()[0]});
                const bool trainable = w.trainable;
                n.inputs.push_back(
                    out.add_constant(unused_name(g, out, src.name + ".bias"), std::move(zeros), trainable));
            }
            fold_batchnorm_into_conv(out.nodes[n.inputs[1]].value, out.nodes[n.inputs[2]].value,
                                     g.nodes[bn.inputs[1]].value, g.nodes[bn.inputs[2]].value,
                                     g.nodes[bn.inputs[3]].value, g.nodes[bn.inputs[4]].value, bn.attrs.epsilon);
        }
        map[i] = out.add(std::move(n));
    }
    out.inputs.clear();
    for (int i : g.inputs) out.inputs.push_back(map[i]);
    for (int o : g.outputs) out.outputs.push_back(map[o]);
    out.output_names = g.output_names;
    out.validate();
    g = std::move(out);
}

}  // namespace engine::train
