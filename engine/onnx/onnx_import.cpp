// ONNX ModelProto -> engine Model. One pass over the nodes in file order (ONNX requires
// topological order), tracking every value's shape at batch 1 so that auto_pad, negative axes
// and rank checks are resolved here, once, instead of in the kernels. SDN heads, which
// exporters spell alpha*MaxPool + (1-alpha)*AvgPool, become MixedPool nodes afterwards.
#include "engine/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/error.h"
#include "fuse_mixed_pool.h"

namespace engine {
namespace {

static_assert(std::endian::native == std::endian::little, "ONNX raw_data is little-endian");

using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

std::string type_name(int type) {
    if (!onnx::TensorProto_DataType_IsValid(type)) return "type " + std::to_string(type);
    return onnx::TensorProto_DataType_Name(static_cast<TensorProto::DataType>(type));
}

bool is_integer_type(int type) {
    return type == TensorProto::INT64 || type == TensorProto::INT32 || type == TensorProto::INT16 ||
           type == TensorProto::INT8 || type == TensorProto::UINT8 || type == TensorProto::UINT16 ||
           type == TensorProto::BOOL;
}

// A value known at import: an initializer, a Constant op's output or a bound input.
struct Known {
    int type = TensorProto::FLOAT;
    std::vector<int64_t> dims;
    std::vector<float> f;    // FLOAT data
    std::vector<int64_t> i;  // integer and bool data
    bool initializer = false;
    int node = -1;  // its engine Constant node, once an op reads it as data
};

template <typename T, typename Out>
void read_raw(const std::string& raw, int64_t n, std::vector<Out>& out) {
    out.resize(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
        T v;
        std::memcpy(&v, raw.data() + k * sizeof(T), sizeof(T));
        out[k] = static_cast<Out>(v);
    }
}

Known decode_tensor(const TensorProto& t, const std::string& where) {
    const std::string what = where + ": tensor '" + t.name() + "'";
    check(t.data_location() != TensorProto::EXTERNAL, what + " keeps its data in an external file (not supported)");
    Known k;
    k.type = t.data_type();
    int64_t n = 1;
    for (int64_t d : t.dims()) {
        check(d >= 0, what + ": negative dimension " + std::to_string(d));
        k.dims.push_back(d);
        n *= d;
    }
    size_t elem = 0;
    switch (k.type) {
        case TensorProto::FLOAT:
        case TensorProto::INT32:
            elem = 4;
            break;
        case TensorProto::INT64:
            elem = 8;
            break;
        case TensorProto::INT16:
        case TensorProto::UINT16:
            elem = 2;
            break;
        case TensorProto::INT8:
        case TensorProto::UINT8:
        case TensorProto::BOOL:
            elem = 1;
            break;
        default:
            fail(what + " has element type " + type_name(k.type) + " (not supported)");
    }
    if (t.has_raw_data()) {
        const std::string& raw = t.raw_data();
        check(raw.size() == static_cast<size_t>(n) * elem, what + ": raw_data holds " + std::to_string(raw.size()) +
                                                               " bytes for " + std::to_string(n) + " elements");
        switch (k.type) {
            case TensorProto::FLOAT:
                read_raw<float>(raw, n, k.f);
                break;
            case TensorProto::INT64:
                read_raw<int64_t>(raw, n, k.i);
                break;
            case TensorProto::INT32:
                read_raw<int32_t>(raw, n, k.i);
                break;
            case TensorProto::INT16:
                read_raw<int16_t>(raw, n, k.i);
                break;
            case TensorProto::UINT16:
                read_raw<uint16_t>(raw, n, k.i);
                break;
            case TensorProto::INT8:
                read_raw<int8_t>(raw, n, k.i);
                break;
            default:
                read_raw<uint8_t>(raw, n, k.i);
                break;  // UINT8, BOOL
        }
    } else if (k.type == TensorProto::FLOAT) {
        k.f.assign(t.float_data().begin(), t.float_data().end());
    } else if (k.type == TensorProto::INT64) {
        k.i.assign(t.int64_data().begin(), t.int64_data().end());
    } else {
        k.i.assign(t.int32_data().begin(), t.int32_data().end());  // the narrower integer types live here
    }
    const size_t got = k.type == TensorProto::FLOAT ? k.f.size() : k.i.size();
    check(got == static_cast<size_t>(n),
          what + " holds " + std::to_string(got) + " values for shape " + dims_str(k.dims));
    return k;
}

std::string attr_str(const AttributeProto& a) {
    switch (a.type()) {
        case AttributeProto::INT:
            return std::to_string(a.i());
        case AttributeProto::FLOAT:
            return std::to_string(a.f());
        case AttributeProto::STRING:
            return a.s();
        case AttributeProto::INTS:
            return dims_str({a.ints().begin(), a.ints().end()});
        case AttributeProto::FLOATS: {
            std::string s = "[";
            for (int k = 0; k < a.floats_size(); ++k) {
                if (k) s += ',';
                s += std::to_string(a.floats(k));
            }
            return s + "]";
        }
        default:
            return "<" + AttributeProto::AttributeType_Name(a.type()) + ">";
    }
}

class Importer;

// Reads a node's attributes and remembers which were read, so that any attribute the importer
// does not know is refused instead of silently ignored.
class AttrReader {
public:
    AttrReader(const Importer& im, const NodeProto& n) : im_(im), n_(n) {}
    bool has(const std::string& name) const;
    int64_t i(const std::string& name, int64_t def);
    float f(const std::string& name, float def);
    std::string s(const std::string& name, const std::string& def);
    std::vector<int64_t> ints(const std::string& name, std::vector<int64_t> def);
    const AttributeProto* get(const std::string& name, AttributeProto::AttributeType type);
    void done() const;  // refuses every attribute not read

private:
    const Importer& im_;
    const NodeProto& n_;
    std::set<std::string> read_;
};

class Importer {
public:
    Importer(const std::string& path, const std::map<std::string, Tensor>& bind) : path_(path), bind_(bind) {}
    Model run();

    [[noreturn]] void refuse(const NodeProto& n, const std::string& what) const {
        fail(path_ + ": node '" + label(n) + "' (" + n.op_type() + "): " + what);
    }
    static std::string label(const NodeProto& n) {
        if (!n.name().empty()) return n.name();
        return n.output_size() ? n.output(0) : std::string("?");
    }

private:
    void import_node(const NodeProto& n);
    void add_input(const onnx::ValueInfoProto& vi);
    void add_output(const onnx::ValueInfoProto& vi);
    void mark_trainable(const onnx::GraphProto& g);

    int add(Node node, const NodeProto* src);
    std::string unique(const std::string& name);
    bool present(const NodeProto& n, int slot) const { return slot < n.input_size() && !n.input(slot).empty(); }
    void need_inputs(const NodeProto& n, int lo, int hi) const;
    void single_output(const NodeProto& n, const std::string& extra) const;
    int data(const NodeProto& n, int slot);
    const Known& known(const NodeProto& n, int slot, const std::string& what) const;
    std::vector<int64_t> known_ints(const NodeProto& n, int slot, const std::string& what) const;
    float known_scalar(const NodeProto& n, int slot, const std::string& what) const;
    const Shape& shape_of(int node) const { return shape_[node]; }
    void emit(const NodeProto& n, Op op, std::vector<int> inputs, const Attrs& attrs);
    void resolve_pads(const NodeProto& n, const std::string& auto_pad, bool pads_given, const Shape& x,
                      const int64_t* kernel, const int64_t* stride, const int64_t* dilation,
                      const std::vector<int64_t>& pads, int64_t* out) const;
    void require_2d(const NodeProto& n, const Shape& x) const;

    void conv(const NodeProto& n);
    void batchnorm(const NodeProto& n);
    void elementwise(const NodeProto& n, Op op);
    void pad(const NodeProto& n);
    void pool(const NodeProto& n, bool max);
    void flatten(const NodeProto& n);
    void gemm(const NodeProto& n);
    void softmax(const NodeProto& n);
    void dropout(const NodeProto& n);
    void constant(const NodeProto& n);

    std::string path_;
    const std::map<std::string, Tensor>& bind_;
    int64_t opset_ = 1;
    Model model_;
    std::vector<Shape> shape_;            // per engine node, at batch 1
    std::map<std::string, int> value_;    // ONNX value name -> the engine node computing it
    std::map<std::string, Known> known_;  // ONNX value name -> its value, when known at import
    std::set<std::string> trainable_;     // initializers that training may update
    std::set<std::string> names_;         // engine node names in use
};

bool AttrReader::has(const std::string& name) const {
    for (const auto& a : n_.attribute())
        if (a.name() == name) return true;
    return false;
}

const AttributeProto* AttrReader::get(const std::string& name, AttributeProto::AttributeType type) {
    for (const auto& a : n_.attribute()) {
        if (a.name() != name) continue;
        read_.insert(name);
        if (a.type() != type && a.type() != AttributeProto::UNDEFINED)
            im_.refuse(n_, "attribute " + name + " has type " + AttributeProto::AttributeType_Name(a.type()) +
                               ", expected " + AttributeProto::AttributeType_Name(type));
        if (!a.ref_attr_name().empty()) im_.refuse(n_, "attribute " + name + " refers to a function attribute");
        return &a;
    }
    return nullptr;
}

int64_t AttrReader::i(const std::string& name, int64_t def) {
    const auto* a = get(name, AttributeProto::INT);
    return a ? a->i() : def;
}
float AttrReader::f(const std::string& name, float def) {
    const auto* a = get(name, AttributeProto::FLOAT);
    return a ? a->f() : def;
}
std::string AttrReader::s(const std::string& name, const std::string& def) {
    const auto* a = get(name, AttributeProto::STRING);
    return a ? a->s() : def;
}
std::vector<int64_t> AttrReader::ints(const std::string& name, std::vector<int64_t> def) {
    const auto* a = get(name, AttributeProto::INTS);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : def;
}

void AttrReader::done() const {
    for (const auto& a : n_.attribute())
        if (!read_.count(a.name())) im_.refuse(n_, "attribute " + a.name() + "=" + attr_str(a) + " not supported");
}

std::string Importer::unique(const std::string& name) {
    std::string base = name.empty() ? "node" : name, s = base;
    for (int k = 1; names_.count(s); ++k) s = base + "#" + std::to_string(k);
    names_.insert(s);
    return s;
}

// Appends a node and infers its shape, so that later nodes can resolve attributes against it.
int Importer::add(Node node, const NodeProto* src) {
    node.name = unique(node.name);
    Shape shape;
    if (node.op == Op::Input) {
        std::vector<int64_t> d = node.input_dims;
        if (!d.empty() && d[0] < 0) d[0] = 1;
        shape = Shape(d);
    } else if (node.op == Op::Constant) {
        shape = node.value.shape();
    } else {
        std::vector<Shape> in;
        for (int k : node.inputs) in.push_back(shape_[k]);
        try {
            shape = infer_shape(node, in);
        } catch (const Error& e) {
            if (src) refuse(*src, e.what());
            fail(path_ + ": " + e.what());
        }
    }
    const int idx = model_.graph.add(std::move(node));
    shape_.push_back(shape);
    return idx;
}

void Importer::need_inputs(const NodeProto& n, int lo, int hi) const {
    if (n.input_size() < lo || n.input_size() > hi)
        refuse(n, "takes " + std::to_string(lo) + (hi > lo ? " to " + std::to_string(hi) : "") + " inputs, given " +
                      std::to_string(n.input_size()));
    for (int k = 0; k < lo; ++k)
        if (n.input(k).empty()) refuse(n, "required input " + std::to_string(k) + " is missing");
}

// Refuses every output after the first (optional outputs such as masks, indices, statistics).
void Importer::single_output(const NodeProto& n, const std::string& extra) const {
    if (n.output_size() < 1 || n.output(0).empty()) refuse(n, "has no output");
    for (int k = 1; k < n.output_size(); ++k)
        if (!n.output(k).empty())
            refuse(n, "output " + std::to_string(k) + " ('" + n.output(k) + "'" + (extra.empty() ? "" : ", " + extra) +
                          ") not supported");
}

// The engine node for a data input, materialising known values as Constant nodes on first use.
int Importer::data(const NodeProto& n, int slot) {
    const std::string& name = n.input(slot);
    if (auto it = value_.find(name); it != value_.end()) return it->second;
    auto it = known_.find(name);
    if (it == known_.end()) refuse(n, "input '" + name + "' is not computed by any earlier node");
    Known& k = it->second;
    if (k.type != TensorProto::FLOAT)
        refuse(n, "input '" + name + "' has element type " + type_name(k.type) + "; only float tensors can be data");
    if (k.node < 0) {
        if (k.dims.size() > Shape::kMaxRank) refuse(n, "input '" + name + "' has rank above 6");
        Node c;
        c.op = Op::Constant;
        c.name = name;
        c.value = Tensor(Shape(k.dims), k.f);
        c.trainable = k.initializer && trainable_.count(name);
        k.node = add(std::move(c), &n);
    }
    return k.node;
}

const Known& Importer::known(const NodeProto& n, int slot, const std::string& what) const {
    auto it = known_.find(n.input(slot));
    if (it == known_.end())
        refuse(n, "input " + what + " ('" + n.input(slot) +
                      "') must be known at import: an initializer, a Constant or a bound input");
    return it->second;
}

std::vector<int64_t> Importer::known_ints(const NodeProto& n, int slot, const std::string& what) const {
    const Known& k = known(n, slot, what);
    if (k.type != TensorProto::FLOAT) return k.i;
    std::vector<int64_t> v;
    for (float x : k.f) {
        if (x != std::nearbyint(x)) refuse(n, "input " + what + " holds a non-integer " + std::to_string(x));
        v.push_back(static_cast<int64_t>(x));
    }
    return v;
}

float Importer::known_scalar(const NodeProto& n, int slot, const std::string& what) const {
    const Known& k = known(n, slot, what);
    const size_t count = k.type == TensorProto::FLOAT ? k.f.size() : k.i.size();
    if (count != 1) refuse(n, "input " + what + " must hold one value, holds " + std::to_string(count));
    return k.type == TensorProto::FLOAT ? k.f[0] : static_cast<float>(k.i[0]);
}

void Importer::emit(const NodeProto& n, Op op, std::vector<int> inputs, const Attrs& attrs) {
    Node node;
    node.op = op;
    node.name = label(n);
    node.inputs = std::move(inputs);
    node.attrs = attrs;
    value_[n.output(0)] = add(std::move(node), &n);
}

void Importer::require_2d(const NodeProto& n, const Shape& x) const {
    if (x.rank != 4) refuse(n, "input of shape " + x.str() + ": only 2-D (NCHW) inputs are supported");
}

// Explicit pads (top, left, bottom, right) from auto_pad or the pads attribute, as ONNX defines them.
void Importer::resolve_pads(const NodeProto& n, const std::string& auto_pad, bool pads_given, const Shape& x,
                            const int64_t* kernel, const int64_t* stride, const int64_t* dilation,
                            const std::vector<int64_t>& pads, int64_t* out) const {
    if (auto_pad == "NOTSET") {
        if (pads.size() != 4) refuse(n, "attribute pads=" + dims_str(pads) + " not supported (2-D needs 4 values)");
        for (int k = 0; k < 4; ++k) {
            if (pads[k] < 0) refuse(n, "attribute pads=" + dims_str(pads) + " not supported (negative)");
            out[k] = pads[k];
        }
        return;
    }
    if (pads_given && pads != std::vector<int64_t>(4, 0))
        refuse(n, "attribute pads=" + dims_str(pads) + " not supported together with auto_pad=" + auto_pad);
    if (auto_pad == "VALID") {
        for (int k = 0; k < 4; ++k) out[k] = 0;
        return;
    }
    if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
        refuse(n, "attribute auto_pad=" + auto_pad + " not supported");
    for (int k = 0; k < 2; ++k) {
        const int64_t in = x[2 + k];
        const int64_t outsize = (in + stride[k] - 1) / stride[k];
        const int64_t total = std::max<int64_t>(0, (outsize - 1) * stride[k] + (kernel[k] - 1) * dilation[k] + 1 - in);
        const int64_t small = total / 2, big = total - small;
        out[k] = auto_pad == "SAME_UPPER" ? small : big;      // begin
        out[k + 2] = auto_pad == "SAME_UPPER" ? big : small;  // end
    }
}

void Importer::conv(const NodeProto& n) {
    AttrReader a(*this, n);
    const std::string auto_pad = a.s("auto_pad", "NOTSET");
    const auto dilations = a.ints("dilations", {1, 1});
    const int64_t group = a.i("group", 1);
    const auto kernel_shape = a.ints("kernel_shape", {});
    const bool pads_given = a.has("pads");
    const auto pads = a.ints("pads", {0, 0, 0, 0});
    const auto strides = a.ints("strides", {1, 1});
    a.done();
    need_inputs(n, 2, 3);
    single_output(n, "");
    std::vector<int> in = {data(n, 0), data(n, 1)};
    if (present(n, 2)) in.push_back(data(n, 2));
    const Shape x = shape_of(in[0]), w = shape_of(in[1]);
    if (w.rank != 4) refuse(n, "weight of shape " + w.str() + ": only 2-D convolution is supported");
    require_2d(n, x);
    if (!kernel_shape.empty() && kernel_shape != std::vector<int64_t>{w[2], w[3]})
        refuse(n, "attribute kernel_shape=" + dims_str(kernel_shape) + " disagrees with the weight shape " + w.str());
    if (dilations.size() != 2 || dilations[0] < 1 || dilations[1] < 1)
        refuse(n, "attribute dilations=" + dims_str(dilations) + " not supported");
    if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1)
        refuse(n, "attribute strides=" + dims_str(strides) + " not supported");
    if (group < 1) refuse(n, "attribute group=" + std::to_string(group) + " not supported");
    Attrs at;
    at.kernel[0] = w[2], at.kernel[1] = w[3];
    at.stride[0] = strides[0], at.stride[1] = strides[1];
    at.dilation[0] = dilations[0], at.dilation[1] = dilations[1];
    at.groups = group;
    resolve_pads(n, auto_pad, pads_given, x, at.kernel, at.stride, at.dilation, pads, at.pad);
    emit(n, Op::Conv, in, at);
}

void Importer::batchnorm(const NodeProto& n) {
    AttrReader a(*this, n);
    Attrs at;
    at.epsilon = a.f("epsilon", 1e-5f);
    // ONNX: running = running * momentum + batch * (1 - momentum); the engine keeps PyTorch's convention.
    at.momentum = 1.0f - a.f("momentum", 0.9f);
    if (const int64_t t = a.i("training_mode", 0); t != 0)
        refuse(n, "attribute training_mode=" + std::to_string(t) + " not supported (inference only)");
    if (const int64_t s = a.i("spatial", 1); s != 1)
        refuse(n, "attribute spatial=" + std::to_string(s) + " not supported");
    a.i("is_test", 0);              // opset < 7: we always run the inference form
    a.ints("consumed_inputs", {});  // opset 1: a legacy hint with no effect on results
    a.done();
    need_inputs(n, 5, 5);
    single_output(n, "training statistics");
    std::vector<int> in;
    for (int k = 0; k < 5; ++k) in.push_back(data(n, k));
    emit(n, Op::BatchNorm, in, at);
}

void Importer::elementwise(const NodeProto& n, Op op) {
    AttrReader a(*this, n);
    // Opset < 7 broadcasting: without `axis` it aligns trailing dimensions, as numpy does.
    a.i("broadcast", 0);
    a.ints("consumed_inputs", {});
    a.done();
    need_inputs(n, 2, 2);
    single_output(n, "");
    emit(n, op, {data(n, 0), data(n, 1)}, {});
}

void Importer::pad(const NodeProto& n) {
    AttrReader a(*this, n);
    const std::string mode = a.s("mode", "constant");
    std::vector<int64_t> pads;
    Attrs at;
    if (opset_ < 11) {
        pads = a.has("paddings") ? a.ints("paddings", {}) : a.ints("pads", {});
        at.pad_value = a.f("value", 0.0f);
        a.done();
        need_inputs(n, 1, 1);
    } else {
        a.done();
        need_inputs(n, 2, 4);
        if (present(n, 3)) refuse(n, "input axes not supported");
        pads = known_ints(n, 1, "pads");
        if (present(n, 2)) at.pad_value = known_scalar(n, 2, "constant_value");
    }
    if (mode != "constant") refuse(n, "attribute mode=" + mode + " not supported");
    single_output(n, "");
    const int x = data(n, 0);
    const int rank = shape_of(x).rank;
    if (pads.size() != static_cast<size_t>(2 * rank))
        refuse(n, "pads " + dims_str(pads) + " do not match an input of rank " + std::to_string(rank));
    for (int64_t p : pads)
        if (p < 0) refuse(n, "pads " + dims_str(pads) + " not supported (negative pads crop)");
    if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) {
        value_[n.output(0)] = x;  // exporters emit these (PyTorch's SDN heads do): a copy for nothing
        return;
    }
    at.pads = pads;
    emit(n, Op::Pad, {x}, at);
}

void Importer::pool(const NodeProto& n, bool max) {
    AttrReader a(*this, n);
    const std::string auto_pad = a.s("auto_pad", "NOTSET");
    const int64_t ceil_mode = a.i("ceil_mode", 0);
    const auto kernel_shape = a.ints("kernel_shape", {});
    const bool pads_given = a.has("pads");
    const auto pads = a.ints("pads", {0, 0, 0, 0});
    const auto strides = a.ints("strides", {1, 1});
    const auto dilations = a.ints("dilations", {1, 1});
    int64_t count_include_pad = 0;
    if (max) {
        // storage_order only lays out the Indices output, which is refused below.
        if (const int64_t so = a.i("storage_order", 0); so != 0 && so != 1)
            refuse(n, "attribute storage_order=" + std::to_string(so) + " not supported");
    } else {
        count_include_pad = a.i("count_include_pad", 0);
    }
    a.done();
    need_inputs(n, 1, 1);
    single_output(n, max ? "Indices" : "");
    if (kernel_shape.size() != 2)
        refuse(n, "attribute kernel_shape=" + dims_str(kernel_shape) + ": only 2-D pooling is supported");
    if (kernel_shape[0] < 1 || kernel_shape[1] < 1)
        refuse(n, "attribute kernel_shape=" + dims_str(kernel_shape) + " not supported");
    if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1)
        refuse(n, "attribute strides=" + dims_str(strides) + " not supported");
    if (dilations.size() != 2 || dilations[0] < 1 || dilations[1] < 1 ||
        (!max && dilations != std::vector<int64_t>{1, 1}))
        refuse(n, "attribute dilations=" + dims_str(dilations) + " not supported");
    if (ceil_mode != 0 && ceil_mode != 1)
        refuse(n, "attribute ceil_mode=" + std::to_string(ceil_mode) + " not supported");
    if (count_include_pad != 0 && count_include_pad != 1)
        refuse(n, "attribute count_include_pad=" + std::to_string(count_include_pad) + " not supported");
    const int x = data(n, 0);
    require_2d(n, shape_of(x));
    Attrs at;
    at.kernel[0] = kernel_shape[0], at.kernel[1] = kernel_shape[1];
    at.stride[0] = strides[0], at.stride[1] = strides[1];
    at.dilation[0] = dilations[0], at.dilation[1] = dilations[1];
    at.ceil_mode = ceil_mode == 1;
    at.count_include_pad = count_include_pad == 1;
    resolve_pads(n, auto_pad, pads_given, shape_of(x), at.kernel, at.stride, at.dilation, pads, at.pad);
    emit(n, max ? Op::MaxPool : Op::AvgPool, {x}, at);
}

void Importer::flatten(const NodeProto& n) {
    AttrReader a(*this, n);
    int64_t axis = a.i("axis", 1);
    a.done();
    need_inputs(n, 1, 1);
    single_output(n, "");
    const int x = data(n, 0);
    const int rank = shape_of(x).rank;
    if (axis < -rank || axis > rank)
        refuse(n, "attribute axis=" + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
    Attrs at;
    at.axis = axis < 0 ? axis + rank : axis;
    emit(n, Op::Flatten, {x}, at);
}

void Importer::gemm(const NodeProto& n) {
    AttrReader a(*this, n);
    Attrs at;
    at.alpha = a.f("alpha", 1.0f);
    at.beta = a.f("beta", 1.0f);
    at.trans_a = a.i("transA", 0) != 0;
    at.trans_b = a.i("transB", 0) != 0;
    a.i("broadcast", 0);  // opset < 7: C broadcasts unidirectionally, as it does since
    a.done();
    need_inputs(n, 2, 3);
    single_output(n, "");
    std::vector<int> in = {data(n, 0), data(n, 1)};
    if (present(n, 2)) in.push_back(data(n, 2));
    emit(n, Op::Gemm, in, at);
}

void Importer::softmax(const NodeProto& n) {
    AttrReader a(*this, n);
    int64_t axis = a.i("axis", opset_ < 13 ? 1 : -1);
    a.done();
    need_inputs(n, 1, 1);
    single_output(n, "");
    const int x = data(n, 0);
    const int rank = shape_of(x).rank;
    if (axis < -rank || axis >= rank)
        refuse(n, "attribute axis=" + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
    if (axis < 0) axis += rank;
    // Before opset 13 Softmax flattens to 2-D at `axis`; that is a softmax along one axis only for the last.
    if (opset_ < 13 && axis != rank - 1)
        refuse(n, "attribute axis=" + std::to_string(axis) + " not supported with opset " + std::to_string(opset_) +
                      " (2-D coercion over several axes)");
    Attrs at;
    at.axis = axis;
    emit(n, Op::Softmax, {x}, at);
}

void Importer::dropout(const NodeProto& n) {
    AttrReader a(*this, n);
    Attrs at;
    at.ratio = a.f("ratio", 0.5f);
    a.i("is_test", 0);              // opset < 7; the engine decides training per run
    a.ints("consumed_inputs", {});  // opset 1
    a.i("seed", 0);                 // only draws training masks; the engine derives its own
    a.done();
    need_inputs(n, 1, 3);
    single_output(n, "mask");
    if (present(n, 1)) at.ratio = known_scalar(n, 1, "ratio");
    if (present(n, 2) && known_scalar(n, 2, "training_mode") != 0)
        refuse(n, "input training_mode=true not supported (inference only)");
    if (!(at.ratio >= 0 && at.ratio < 1)) refuse(n, "ratio " + std::to_string(at.ratio) + " not supported");
    emit(n, Op::Dropout, {data(n, 0)}, at);
}

void Importer::constant(const NodeProto& n) {
    if (n.attribute_size() != 1) refuse(n, "needs exactly one value attribute");
    need_inputs(n, 0, 0);
    single_output(n, "");
    AttrReader a(*this, n);
    Known k;
    const std::string& which = n.attribute(0).name();
    if (which == "value") {
        k = decode_tensor(a.get("value", AttributeProto::TENSOR)->t(), path_ + ": node '" + label(n) + "'");
    } else if (which == "value_float") {
        k.f = {a.f("value_float", 0)};
    } else if (which == "value_floats") {
        const auto* p = a.get("value_floats", AttributeProto::FLOATS);
        k.f.assign(p->floats().begin(), p->floats().end());
        k.dims = {static_cast<int64_t>(k.f.size())};
    } else if (which == "value_int") {
        k.type = TensorProto::INT64;
        k.i = {a.i("value_int", 0)};
    } else if (which == "value_ints") {
        k.type = TensorProto::INT64;
        k.i = a.ints("value_ints", {});
        k.dims = {static_cast<int64_t>(k.i.size())};
    }
    a.done();
    known_[n.output(0)] = std::move(k);
}

void Importer::import_node(const NodeProto& n) {
    if (!n.domain().empty() && n.domain() != "ai.onnx") refuse(n, "unsupported operator (domain '" + n.domain() + "')");
    const std::string& t = n.op_type();
    if (t == "Conv")
        conv(n);
    else if (t == "BatchNormalization")
        batchnorm(n);
    else if (t == "Relu") {
        AttrReader a(*this, n);
        a.ints("consumed_inputs", {});
        a.done();
        need_inputs(n, 1, 1);
        single_output(n, "");
        emit(n, Op::Relu, {data(n, 0)}, {});
    } else if (t == "Add")
        elementwise(n, Op::Add);
    else if (t == "Sub")
        elementwise(n, Op::Sub);
    else if (t == "Mul")
        elementwise(n, Op::Mul);
    else if (t == "Div")
        elementwise(n, Op::Div);
    else if (t == "Pad")
        pad(n);
    else if (t == "MaxPool")
        pool(n, true);
    else if (t == "AveragePool")
        pool(n, false);
    else if (t == "GlobalAveragePool") {
        AttrReader(*this, n).done();
        need_inputs(n, 1, 1);
        single_output(n, "");
        const int x = data(n, 0);
        require_2d(n, shape_of(x));
        emit(n, Op::GlobalAvgPool, {x}, {});
    } else if (t == "Flatten")
        flatten(n);
    else if (t == "Gemm")
        gemm(n);
    else if (t == "Softmax")
        softmax(n);
    else if (t == "Dropout")
        dropout(n);
    else if (t == "Identity") {
        AttrReader(*this, n).done();
        need_inputs(n, 1, 1);
        single_output(n, "");
        if (auto it = value_.find(n.input(0)); it != value_.end())
            value_[n.output(0)] = it->second;
        else
            known_[n.output(0)] = known(n, 0, "input");
    } else if (t == "Constant")
        constant(n);
    else
        refuse(n, "unsupported operator");
}

// Initializers read by a layer's weight slots or as an operand of Mul/Add (scales such as SDN's
// mixed-pooling alpha) are parameters; normalisation constants (Sub/Div) and BatchNorm's running
// statistics are not.
void Importer::mark_trainable(const onnx::GraphProto& g) {
    for (const auto& n : g.node()) {
        std::vector<int> slots;
        const std::string& t = n.op_type();
        if (t == "Conv" || t == "Gemm" || t == "BatchNormalization")
            slots = {1, 2};
        else if (t == "Mul" || t == "Add")
            slots = {0, 1};
        for (int s : slots)
            if (s < n.input_size() && !n.input(s).empty()) trainable_.insert(n.input(s));
    }
}

void Importer::add_input(const onnx::ValueInfoProto& vi) {
    const std::string& name = vi.name();
    const std::string what = path_ + ": input '" + name + "'";
    const auto& tt = vi.type().tensor_type();
    if (auto b = bind_.find(name); b != bind_.end()) {
        Known k;
        k.type = vi.type().has_tensor_type() ? tt.elem_type() : int(TensorProto::FLOAT);
        k.dims = b->second.shape().vec();
        if (is_integer_type(k.type)) {
            for (float v : b->second.values()) {
                check(v == std::nearbyint(v),
                      what + " is " + type_name(k.type) + " but bound to non-integer " + std::to_string(v));
                k.i.push_back(static_cast<int64_t>(v));
            }
        } else {
            k.type = TensorProto::FLOAT;
            k.f = b->second.values();
        }
        known_[name] = std::move(k);
        return;
    }
    if (known_.count(name)) return;  // IR < 4 lists initializers among the inputs
    check(vi.type().has_tensor_type(), what + " is not a tensor (sequences, maps and optionals are not supported)");
    check(tt.elem_type() == TensorProto::FLOAT, what + " has element type " + type_name(tt.elem_type()) +
                                                    "; only float inputs are supported (bind it to a constant)");
    check(tt.has_shape(), what + " has no declared shape");
    Node node;
    node.op = Op::Input;
    node.name = name;
    for (int k = 0; k < tt.shape().dim_size(); ++k) {
        const auto& d = tt.shape().dim(k);
        const bool fixed = d.has_dim_value() && d.dim_value() > 0;
        check(fixed || k == 0, what + ": dimension " + std::to_string(k) +
                                   " is symbolic or unknown; only the first (batch) dimension may be");
        node.input_dims.push_back(fixed ? d.dim_value() : -1);
    }
    check(node.input_dims.size() <= Shape::kMaxRank, what + " has rank above 6");
    value_[name] = add(std::move(node), nullptr);  // Graph::add lists it in graph.inputs
}

void Importer::add_output(const onnx::ValueInfoProto& vi) {
    const std::string& name = vi.name();
    const std::string what = path_ + ": output '" + name + "'";
    if (vi.type().has_tensor_type())
        check(vi.type().tensor_type().elem_type() == TensorProto::FLOAT,
              what + " has element type " + type_name(vi.type().tensor_type().elem_type()) +
                  "; only float outputs are supported");
    auto it = value_.find(name);
    check(it != value_.end(),
          what + (known_.count(name) ? " is a constant; nothing to compute" : " is not computed by any node"));
    check(model_.graph.nodes[it->second].op != Op::Input, what + " is the graph input itself; nothing to compute");
    model_.graph.outputs.push_back(it->second);
    model_.graph.output_names.push_back(name);
}

Model Importer::run() {
    std::ifstream file(path_, std::ios::binary);
    check(file.good(), path_ + ": cannot open");
    onnx::ModelProto m;
    check(m.ParseFromIstream(&file), path_ + ": not an ONNX model (protobuf parse failed)");
    for (const auto& op : m.opset_import())
        if (op.domain().empty() || op.domain() == "ai.onnx") opset_ = op.version();
    const auto& g = m.graph();
    check(g.node_size() > 0 && g.output_size() > 0, path_ + ": the ONNX graph is empty");

    for (const auto& [name, t] : bind_) {
        bool found = false;
        for (const auto& vi : g.input()) found = found || vi.name() == name;
        check(found, path_ + ": bound name '" + name + "' is not a graph input");
    }
    for (const auto& t : g.initializer()) {
        Known k = decode_tensor(t, path_);
        k.initializer = true;
        known_[t.name()] = std::move(k);
    }
    if (g.sparse_initializer_size() > 0) fail(path_ + ": sparse initializers are not supported");
    mark_trainable(g);
    for (const auto& vi : g.input()) add_input(vi);
    for (const auto& n : g.node()) import_node(n);
    for (const auto& vi : g.output()) add_output(vi);
    // One trainable alpha per head instead of alpha and a constant 1 - alpha that training would untie.
    fuse_mixed_pool(model_.graph);

    model_.thresholds.assign(model_.graph.outputs.size(), 0.9f);
    model_.metadata["source"] = "onnx";
    model_.metadata["onnx_file"] = std::filesystem::path(path_).filename().string();
    model_.metadata["onnx_opset"] = std::to_string(opset_);
    if (!m.producer_name().empty())
        model_.metadata["onnx_producer"] =
            m.producer_name() + (m.producer_version().empty() ? "" : " " + m.producer_version());
    // Only the graph: Model::validate also requires every exit to be [batch, classes] logits, which
    // load_model checks, while single-operator graphs (the ONNX node tests) have other outputs.
    try {
        model_.graph.validate();
    } catch (const Error& e) {
        fail(path_ + ": " + e.what());
    }
    return std::move(model_);
}

}  // namespace

Model import_onnx(const std::string& path, const std::map<std::string, Tensor>& bind) {
    return Importer(path, bind).run();
}

}  // namespace engine
