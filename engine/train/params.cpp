#include <algorithm>
#include <cmath>
#include <random>
#include <regex>

#include "engine/error.h"
#include "engine/train/params.h"

namespace engine::train {

namespace {

std::regex compile(const std::string& pattern, const char* option) {
    try {
        return std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        fail(std::string(option) + " '" + pattern + "': not a valid regular expression (" + e.what() + ")");
    }
}

// The first node that reads value `node`, and at which input position; {-1, -1} when unused.
std::pair<int, int> first_use(const Graph& g, int node) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
        for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k)
            if (g.nodes[i].inputs[k] == node) return {int(i), int(k)};
    return {-1, -1};
}

// Same generators as the model builders (24-bit uniform, Box-Muller normal).
struct InitRng {
    std::mt19937_64 rng;
    float uniform(float lo, float hi) { return lo + (hi - lo) * float(rng() >> 40) * (1.0f / 16777216.0f); }
    float normal() {
        double u1 = (double(rng() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
        double u2 = double(rng() >> 11) * (1.0 / 9007199254740992.0);
        return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

void fill(Tensor& t, float v) { std::fill(t.values().begin(), t.values().end(), v); }

}  // namespace

std::vector<int> trainable_nodes(const Graph& graph) {
    std::vector<int> out;
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        if (graph.nodes[i].op == Op::Constant && graph.nodes[i].trainable) out.push_back(int(i));
    return out;
}

std::vector<int> select_parameters(const Graph& graph, const std::string& mode, const std::string& pattern) {
    std::vector<int> out;
    const bool filter = !pattern.empty();
    std::regex re = filter ? compile(pattern, "--train-only") : std::regex();
    for (int i : trainable_nodes(graph)) {
        const std::string& name = graph.nodes[i].name;
        if (mode == "ic-only" && name.find(".ic.") == std::string::npos) continue;
        if (filter && !std::regex_search(name, re)) continue;
        out.push_back(i);
    }
    check(!out.empty(), "no parameter left to train (mode " + mode +
                            (filter ? ", --train-only '" + pattern + "'" : "") + ")" +
                            (mode == "ic-only" ? ": ic-only trains parameters named '*.ic.*'" : ""));
    return out;
}

int reinitialize(Graph& g, const std::string& pattern, uint64_t seed) {
    std::regex re = compile(pattern, "--reinit");
    InitRng r{std::mt19937_64(seed ^ 0x5EED0F12EB1Dull)};
    int count = 0;
    for (int i : trainable_nodes(g)) {
        Node& p = g.nodes[i];
        if (!std::regex_search(p.name, re)) continue;
        auto [user, slot] = first_use(g, i);
        check(user >= 0, "--reinit: parameter '" + p.name + "' is not used by any node");
        const Node& u = g.nodes[user];
        Tensor& t = p.value;
        const std::string where = "--reinit: parameter '" + p.name + "' (input " + std::to_string(slot) + " of " +
                                  op_name(u.op) + " '" + u.name + "')";
        if (u.op == Op::Conv && slot == 1) {
            check(t.shape().rank == 4, where + ": expected a 4-D weight");
            const float sd = std::sqrt(2.0f / float(t.shape()[0] * t.shape()[2] * t.shape()[3]));
            for (float& v : t.values()) v = sd * r.normal();
        } else if ((u.op == Op::Conv || u.op == Op::Gemm) && slot == 2) {
            const Tensor& w = g.nodes[u.inputs[1]].value;
            const int64_t fan_in =
                u.op == Op::Conv ? w.numel() / w.shape()[0] : (u.attrs.trans_b ? w.shape()[1] : w.shape()[0]);
            const float bound = 1.0f / std::sqrt(float(fan_in));
            for (float& v : t.values()) v = r.uniform(-bound, bound);
        } else if (u.op == Op::Gemm && slot == 1) {
            check(t.shape().rank == 2, where + ": expected a 2-D weight");
            const float bound = 1.0f / std::sqrt(float(u.attrs.trans_b ? t.shape()[1] : t.shape()[0]));
            for (float& v : t.values()) v = r.uniform(-bound, bound);
        } else if (u.op == Op::BatchNorm && (slot == 1 || slot == 2)) {
            fill(t, slot == 1 ? 1.0f : 0.0f);
            fill(g.nodes[u.inputs[3]].value, 0.0f);
            fill(g.nodes[u.inputs[4]].value, 1.0f);
        } else if (u.op == Op::MixedPool && slot == 1) {
            fill(t, 0.5f);
        } else {
            fail(where + ": no initialisation rule for this use");
        }
        ++count;
    }
    check(count > 0, "--reinit '" + pattern + "': matches no trainable parameter");
    return count;
}

void PruneMask::apply_to_values(Graph& graph) const {
    for (size_t i = 0; i < nodes.size(); ++i) {
        float* v = graph.nodes[nodes[i]].value.data();
        for (size_t k = 0; k < keep[i].size(); ++k)
            if (!keep[i][k]) v[k] = 0.0f;
    }
}

void PruneMask::apply_to_grad(size_t i, float* grad) const {
    for (size_t k = 0; k < keep[i].size(); ++k)
        if (!keep[i][k]) grad[k] = 0.0f;
}

int PruneMask::index_of(int node) const {
    auto it = std::find(nodes.begin(), nodes.end(), node);
    return it == nodes.end() ? -1 : int(it - nodes.begin());
}

PruneMask magnitude_prune(Graph& graph, double fraction) {
    check(fraction >= 0 && fraction < 1, "--prune " + std::to_string(fraction) + ": fraction must lie in [0, 1)");
    PruneMask mask;
    struct Entry {
        float mag;
        int64_t pos;
    };
    std::vector<Entry> all;
    for (int i : trainable_nodes(graph)) {
        const Tensor& t = graph.nodes[i].value;
        if (t.shape().rank != 4 && t.shape().rank != 2) continue;
        mask.nodes.push_back(i);
        mask.keep.emplace_back(t.numel(), 1);
        for (int64_t k = 0; k < t.numel(); ++k) all.push_back({std::abs(t[k]), mask.total + k});
        mask.total += t.numel();
    }
    check(!mask.nodes.empty(), "--prune: the model has no 4-D or 2-D trainable weights");
    mask.pruned = std::llround(fraction * double(mask.total));
    if (mask.pruned == 0) return mask;
    auto less = [](const Entry& a, const Entry& b) { return a.mag < b.mag || (a.mag == b.mag && a.pos < b.pos); };
    std::nth_element(all.begin(), all.begin() + (mask.pruned - 1), all.end(), less);
    const Entry cut = all[mask.pruned - 1];
    // Prune everything at or below the cut in (magnitude, position) order.
    int64_t base = 0;
    for (size_t i = 0; i < mask.nodes.size(); ++i) {
        const Tensor& t = graph.nodes[mask.nodes[i]].value;
        for (int64_t k = 0; k < t.numel(); ++k)
            if (!less(cut, Entry{std::abs(t[k]), base + k})) mask.keep[i][k] = 0;
        base += t.numel();
    }
    mask.apply_to_values(graph);
    return mask;
}

int64_t quantize_weights(Graph& graph, int bits) {
    check(bits >= 2 && bits <= 16, "--quantize " + std::to_string(bits) + ": bits must lie in [2, 16]");
    const double levels = double((1 << (bits - 1)) - 1);
    int64_t count = 0;
    for (int i : trainable_nodes(graph)) {
        Tensor& t = graph.nodes[i].value;
        const int rank = t.shape().rank;
        if (rank != 4 && rank != 2) continue;
        const int64_t groups = rank == 4 ? t.shape()[0] : 1, per = t.numel() / groups;
        for (int64_t g = 0; g < groups; ++g) {
            float* w = t.data() + g * per;
            float top = 0;
            for (int64_t k = 0; k < per; ++k) top = std::max(top, std::abs(w[k]));
            if (top == 0) continue;
            const double scale = top / levels;
            for (int64_t k = 0; k < per; ++k) w[k] = float(std::nearbyint(w[k] / scale) * scale);
        }
        count += t.numel();
    }
    check(count > 0, "--quantize: the model has no 4-D or 2-D trainable weights");
    return count;
}

}  // namespace engine::train
