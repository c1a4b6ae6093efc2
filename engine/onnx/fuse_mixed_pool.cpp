#include "fuse_mixed_pool.h"

#include <algorithm>
#include <cmath>

namespace engine {
namespace {

// A scalar that broadcasts against an NCHW tensor without changing its shape.
bool is_scalar_constant(const Node& n) {
    return n.op == Op::Constant && n.value.numel() == 1 && n.value.shape().rank <= 4;
}

// For Mul(scale, pool) or Mul(pool, scale) with `pool` of kind `op`: the pool and scale nodes.
bool scaled_pool(const Graph& g, int mul, Op op, int& pool, int& scale) {
    const Node& m = g.nodes[mul];
    if (m.op != Op::Mul || m.inputs.size() != 2) return false;
    for (int k = 0; k < 2; ++k) {
        const int p = m.inputs[k], s = m.inputs[1 - k];
        if (g.nodes[p].op == op && is_scalar_constant(g.nodes[s])) {
            pool = p, scale = s;
            return true;
        }
    }
    return false;
}

// Max and average over the same windows. MixedPool averages over real elements only, so
// count_include_pad must be off unless there is no padding to count.
bool same_windows(const Attrs& mx, const Attrs& av) {
    const bool padded = std::any_of(av.pad, av.pad + 4, [](int64_t p) { return p != 0; });
    return std::equal(mx.kernel, mx.kernel + 2, av.kernel) && std::equal(mx.stride, mx.stride + 2, av.stride) &&
           std::equal(mx.pad, mx.pad + 4, av.pad) && std::equal(mx.dilation, mx.dilation + 2, av.dilation) &&
           !mx.ceil_mode && !av.ceil_mode && !(padded && av.count_include_pad);
}

struct Head {
    int add, x, alpha;
    std::vector<int> detached;  // the Muls, the pools and c: dead unless something else reads them
};

bool match(const Graph& g, const std::vector<int>& uses, int add, Head& h) {
    const Node& a = g.nodes[add];
    if (a.op != Op::Add || a.inputs.size() != 2) return false;
    for (int k = 0; k < 2; ++k) {
        const int mul_max = a.inputs[k], mul_avg = a.inputs[1 - k];
        int max, alpha, avg, c;
        if (!scaled_pool(g, mul_max, Op::MaxPool, max, alpha) || !scaled_pool(g, mul_avg, Op::AvgPool, avg, c))
            continue;
        if (uses[mul_max] != 1 || uses[mul_avg] != 1 || uses[max] != 1 || uses[avg] != 1) continue;
        const Node &mx = g.nodes[max], &av = g.nodes[avg];
        if (mx.inputs != av.inputs || !same_windows(mx.attrs, av.attrs)) continue;
        const double al = g.nodes[alpha].value[0], cv = g.nodes[c].value[0];
        if (!(std::abs(cv - (1.0 - al)) <= 1e-6)) continue;
        h = {add, mx.inputs[0], alpha, {mul_max, mul_avg, max, avg, c}};
        return true;
    }
    return false;
}

}  // namespace

int fuse_mixed_pool(Graph& g) {
    const int count = static_cast<int>(g.nodes.size());
    std::vector<int> uses = g.consumer_counts();  // readers, counting graph outputs as readers
    for (int o : g.outputs) ++uses[o];

    std::vector<bool> candidate(count, false);
    int fused = 0;
    for (int i = 0; i < count; ++i) {
        Head h;
        if (!match(g, uses, i, h)) continue;
        Node& n = g.nodes[i];
        for (int in : n.inputs) --uses[in];
        Attrs at = g.nodes[h.detached[2]].attrs;  // the MaxPool's window
        at.count_include_pad = false;
        n.op = Op::MixedPool;
        n.inputs = {h.x, h.alpha};
        n.attrs = at;
        ++uses[h.x], ++uses[h.alpha];
        for (int d : h.detached) candidate[d] = true;
        ++fused;
    }
    if (!fused) return 0;

    // Drop the detached nodes nothing reads any more, readers before what they read.
    std::vector<bool> dead(count, false);
    for (int i = count - 1; i >= 0; --i) {
        if (!candidate[i] || uses[i] != 0) continue;
        dead[i] = true;
        for (int in : g.nodes[i].inputs) --uses[in];
    }
    std::vector<int> remap(count, -1);
    std::vector<Node> kept;
    for (int i = 0; i < count; ++i) {
        if (dead[i]) continue;
        remap[i] = static_cast<int>(kept.size());
        kept.push_back(std::move(g.nodes[i]));
        for (int& in : kept.back().inputs) in = remap[in];
    }
    g.nodes = std::move(kept);
    for (int& i : g.inputs) i = remap[i];
    for (int& o : g.outputs) o = remap[o];
    return fused;
}

}  // namespace engine
