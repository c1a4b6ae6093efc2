#include "engine/graph.h"

#include <algorithm>
#include <iterator>

#include "engine/error.h"

namespace engine {

namespace {

// In the order of enum Op; a missing or extra name fails to compile (a sized std::array would
// silently fill a missing one with nullptr).
constexpr const char* kOpNames[] = {"Input",         "Constant", "Conv", "BatchNorm", "Relu",      "Add",
                                    "Sub",           "Mul",      "Div",  "Pad",       "MaxPool",   "AvgPool",
                                    "GlobalAvgPool", "Flatten",  "Gemm", "Softmax",   "MixedPool", "Dropout"};
static_assert(std::size(kOpNames) == static_cast<size_t>(Op::Count), "kOpNames needs one name per Op");

std::string where(const Node& n) { return std::string("node '") + n.name + "' (" + op_name(n.op) + ")"; }

void expect_inputs(const Node& n, const std::vector<Shape>& in, size_t lo, size_t hi) {
    check(in.size() >= lo && in.size() <= hi, where(n) + ": expects " + std::to_string(lo) +
                                                  (lo == hi ? "" : ".." + std::to_string(hi)) + " inputs, got " +
                                                  std::to_string(in.size()));
}

int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t pad_total, int64_t dilation, bool ceil_mode) {
    int64_t span = dilation * (k - 1) + 1;
    int64_t num = in + pad_total - span;
    if (num < 0) return 0;
    int64_t out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    // With ceil_mode the last window must start inside the input or the leading padding.
    if (ceil_mode && (out - 1) * s >= in + pad_total / 2) --out;
    return out;
}

Shape broadcast(const Node& n, const Shape& a, const Shape& b) {
    Shape out;
    out.rank = std::max(a.rank, b.rank);
    for (int i = 0; i < out.rank; ++i) {
        int64_t da = i - (out.rank - a.rank) >= 0 ? a[i - (out.rank - a.rank)] : 1;
        int64_t db = i - (out.rank - b.rank) >= 0 ? b[i - (out.rank - b.rank)] : 1;
        check(da == db || da == 1 || db == 1,
              where(n) + ": shapes " + a.str() + " and " + b.str() + " do not broadcast");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

Shape spatial_out(const Node& n, const Shape& x, int64_t channels) {
    const Attrs& a = n.attrs;
    check(x.rank == 4, where(n) + ": expects a 4-D NCHW input, got " + x.str());
    int64_t h = pooled_size(x[2], a.kernel[0], a.stride[0], a.pad[0] + a.pad[2], a.dilation[0], a.ceil_mode);
    int64_t w = pooled_size(x[3], a.kernel[1], a.stride[1], a.pad[1] + a.pad[3], a.dilation[1], a.ceil_mode);
    check(h > 0 && w > 0, where(n) + ": window larger than the padded input " + x.str());
    return Shape{x[0], channels, h, w};
}

}  // namespace

const char* op_name(Op op) {
    auto i = static_cast<size_t>(op);
    return i < std::size(kOpNames) ? kOpNames[i] : "?";
}

Op op_from_name(const std::string& name) {
    for (size_t i = 0; i < std::size(kOpNames); ++i)
        if (name == kOpNames[i]) return static_cast<Op>(i);
    return Op::Count;
}

Shape infer_shape(const Node& n, const std::vector<Shape>& in) {
    const Attrs& a = n.attrs;
    switch (n.op) {
        case Op::Input:
        case Op::Constant:
            fail(where(n) + ": has no inferred shape");
        case Op::Conv: {
            expect_inputs(n, in, 2, 3);
            const Shape &x = in[0], &w = in[1];
            check(w.rank == 4, where(n) + ": weight must be 4-D, got " + w.str());
            check(x.rank == 4, where(n) + ": expects a 4-D NCHW input, got " + x.str());
            check(a.groups >= 1 && x[1] % a.groups == 0 && w[0] % a.groups == 0 && w[1] * a.groups == x[1],
                  where(n) + ": input " + x.str() + " and weight " + w.str() +
                      " disagree for groups=" + std::to_string(a.groups));
            check(w[2] == a.kernel[0] && w[3] == a.kernel[1],
                  where(n) + ": weight " + w.str() + " does not match the kernel size");
            if (in.size() == 3)
                check(in[2].numel() == w[0] && in[2].rank == 1,
                      where(n) + ": bias " + in[2].str() + " is not [" + std::to_string(w[0]) + "]");
            Attrs plain = a;
            plain.ceil_mode = false;
            Node tmp = n;
            tmp.attrs = plain;
            return spatial_out(tmp, x, w[0]);
        }
        case Op::BatchNorm: {
            expect_inputs(n, in, 5, 5);
            check(in[0].rank >= 2, where(n) + ": input must have a channel dimension");
            for (int i = 1; i < 5; ++i)
                check(in[i].numel() == in[0][1], where(n) + ": parameter " + std::to_string(i) + " has shape " +
                                                     in[i].str() + ", expected " + std::to_string(in[0][1]) +
                                                     " values");
            return in[0];
        }
        case Op::Relu:
        case Op::Dropout:
            expect_inputs(n, in, 1, 1);
            return in[0];
        case Op::Softmax:
            expect_inputs(n, in, 1, 1);
            check(a.axis >= 0 && a.axis < in[0].rank, where(n) + ": axis out of range for " + in[0].str());
            return in[0];
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::Div:
            expect_inputs(n, in, 2, 2);
            return broadcast(n, in[0], in[1]);
        case Op::Pad: {
            expect_inputs(n, in, 1, 1);
            const Shape& x = in[0];
            check(static_cast<int>(a.pads.size()) == 2 * x.rank,
                  where(n) + ": needs " + std::to_string(2 * x.rank) + " pads for input " + x.str());
            Shape out = x;
            for (int i = 0; i < x.rank; ++i) {
                out[i] = x[i] + a.pads[i] + a.pads[i + x.rank];
                check(out[i] >= 0 && a.pads[i] >= 0 && a.pads[i + x.rank] >= 0,
                      where(n) + ": negative pads are not supported");
            }
            return out;
        }
        case Op::MaxPool:
        case Op::AvgPool:
            expect_inputs(n, in, 1, 1);
            return spatial_out(n, in[0], in[0].rank == 4 ? in[0][1] : 0);
        case Op::MixedPool:
            expect_inputs(n, in, 2, 2);
            check(in[1].numel() == 1, where(n) + ": alpha must be a scalar, got " + in[1].str());
            return spatial_out(n, in[0], in[0].rank == 4 ? in[0][1] : 0);
        case Op::GlobalAvgPool:
            expect_inputs(n, in, 1, 1);
            check(in[0].rank == 4, where(n) + ": expects a 4-D NCHW input, got " + in[0].str());
            return Shape{in[0][0], in[0][1], 1, 1};
        case Op::Flatten: {
            expect_inputs(n, in, 1, 1);
            check(a.axis >= 0 && a.axis <= in[0].rank, where(n) + ": axis out of range for " + in[0].str());
            int64_t outer = 1, inner = 1;
            for (int i = 0; i < in[0].rank; ++i) (i < a.axis ? outer : inner) *= in[0][i];
            return Shape{outer, inner};
        }
        case Op::Gemm: {
            expect_inputs(n, in, 2, 3);
            check(in[0].rank == 2 && in[1].rank == 2,
                  where(n) + ": expects 2-D operands, got " + in[0].str() + " and " + in[1].str());
            int64_t m = a.trans_a ? in[0][1] : in[0][0], k = a.trans_a ? in[0][0] : in[0][1];
            int64_t k2 = a.trans_b ? in[1][1] : in[1][0], nn = a.trans_b ? in[1][0] : in[1][1];
            check(k == k2, where(n) + ": inner dimensions differ: " + in[0].str() + " x " + in[1].str());
            Shape out{m, nn};
            if (in.size() == 3) {
                Shape c = broadcast(n, out, in[2]);
                check(c == out, where(n) + ": C " + in[2].str() + " does not broadcast to " + out.str());
            }
            return out;
        }
        case Op::Count:
            break;
    }
    fail(where(n) + ": unknown op");
}

int64_t node_macs(const Node& n, const std::vector<Shape>& in, const Shape& out) {
    auto per_sample = [&](int64_t total) { return out[0] > 0 ? total / out[0] : 0; };
    switch (n.op) {
        case Op::Conv:
            return per_sample(out.numel() * in[1][1] * in[1][2] * in[1][3]);
        case Op::Gemm: {
            int64_t k = n.attrs.trans_a ? in[0][0] : in[0][1];
            return per_sample(out.numel() * k);
        }
        default:
            return 0;
    }
}

int Graph::add(Node node) {
    nodes.push_back(std::move(node));
    int index = static_cast<int>(nodes.size()) - 1;
    if (nodes.back().op == Op::Input) inputs.push_back(index);
    return index;
}

int Graph::add_constant(const std::string& name, Tensor value, bool trainable) {
    Node n;
    n.op = Op::Constant;
    n.name = name;
    n.value = std::move(value);
    n.trainable = trainable;
    return add(std::move(n));
}

int Graph::add_op(Op op, const std::string& name, std::vector<int> in, Attrs attrs) {
    Node n;
    n.op = op;
    n.name = name;
    n.inputs = std::move(in);
    n.attrs = std::move(attrs);
    return add(std::move(n));
}

int Graph::find(const std::string& name) const {
    for (size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].name == name) return static_cast<int>(i);
    return -1;
}

std::vector<int> Graph::consumer_counts() const {
    std::vector<int> count(nodes.size(), 0);
    for (const Node& n : nodes)
        for (int j : n.inputs) ++count[j];
    return count;
}

void Graph::validate() const {
    check(!nodes.empty(), "graph has no nodes");
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        check(n.op < Op::Count, "node " + std::to_string(i) + ": unknown op");
        for (int j : n.inputs)
            check(j >= 0 && static_cast<size_t>(j) < i,
                  where(n) + ": input index " + std::to_string(j) + " is not an earlier node");
        if (n.op == Op::Input || n.op == Op::Constant) check(n.inputs.empty(), where(n) + ": must have no inputs");
        const Attrs& a = n.attrs;
        for (int d = 0; d < 2; ++d)
            check(a.kernel[d] >= 1 && a.stride[d] >= 1 && a.dilation[d] >= 1,
                  where(n) + ": kernel, stride and dilation must be positive");
        for (int64_t p : a.pad) check(p >= 0, where(n) + ": negative padding");
    }
    for (int i : inputs)
        check(i >= 0 && static_cast<size_t>(i) < nodes.size() && nodes[i].op == Op::Input, "graph input index invalid");
    check(!outputs.empty(), "graph has no outputs");
    for (int o : outputs)
        check(o >= 0 && static_cast<size_t>(o) < nodes.size(), "graph output index " + std::to_string(o) + " invalid");
    check(output_names.empty() || output_names.size() == outputs.size(), "graph output names do not match outputs");
}

std::vector<Shape> Graph::infer_shapes(int64_t batch) const {
    std::vector<Shape> shapes(nodes.size());
    std::vector<Shape> in;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        if (n.op == Op::Constant) {
            shapes[i] = n.value.shape();
        } else if (n.op == Op::Input) {
            std::vector<int64_t> d = n.input_dims;
            for (auto& v : d) v = v < 0 ? batch : v;
            shapes[i] = Shape(d);
        } else {
            in.clear();
            for (int j : n.inputs) in.push_back(shapes[j]);
            shapes[i] = infer_shape(n, in);
        }
    }
    return shapes;
}

namespace {

std::vector<const Node*> node_pointers(const Graph& graph) {
    std::vector<const Node*> nodes;
    for (const Node& n : graph.nodes) nodes.push_back(&n);
    return nodes;
}

}  // namespace

std::vector<std::vector<int>> exit_segments(const std::vector<const Node*>& nodes, const std::vector<int>& outputs) {
    const int count = int(nodes.size());
    std::vector<char> computed(count, 0);
    std::vector<std::vector<int>> segments;
    for (int out : outputs) {
        std::vector<char> need(count, 0);
        need[out] = 1;
        for (int i = out; i >= 0; --i)
            if (need[i])
                for (int j : nodes[i]->inputs) need[j] = 1;
        std::vector<int> seg;
        for (int i = 0; i <= out; ++i)
            if (need[i] && !computed[i] && nodes[i]->op != Op::Constant && nodes[i]->op != Op::Input) {
                seg.push_back(i);
                computed[i] = 1;
            }
        segments.push_back(std::move(seg));
    }
    return segments;
}

std::vector<std::vector<int>> exit_segments(const Graph& graph) {
    return exit_segments(node_pointers(graph), graph.outputs);
}

std::vector<int64_t> exit_macs(const std::vector<const Node*>& nodes, const std::vector<std::vector<int>>& segments,
                               const std::vector<Shape>& shapes) {
    std::vector<int64_t> result;
    int64_t total = 0;
    std::vector<Shape> in;
    for (const auto& seg : segments) {
        for (int i : seg) {
            in.clear();
            for (int j : nodes[i]->inputs) in.push_back(shapes[j]);
            total += node_macs(*nodes[i], in, shapes[i]);
        }
        result.push_back(total);
    }
    return result;
}

std::vector<int64_t> exit_macs(const Graph& graph) {
    const auto nodes = node_pointers(graph);
    return exit_macs(nodes, exit_segments(nodes, graph.outputs), graph.infer_shapes(1));
}

int64_t count_parameters(const Graph& graph) {
    int64_t n = 0;
    for (const Node& node : graph.nodes)
        if (node.op == Op::Constant && node.trainable) n += node.value.numel();
    return n;
}

}  // namespace engine
