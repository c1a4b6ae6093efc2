// The native model file: a safetensors file whose tensors are the Constant nodes' values and
// whose __metadata__ holds "format": "engine-model", "version": "1", "graph" (the graph as JSON),
// "thresholds" (a JSON array) and the model's own metadata entries.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/error.h"
#include "engine/hash.h"
#include "engine/model.h"
#include "engine/safetensors.h"

namespace engine {

namespace {

using nlohmann::json;

constexpr const char* kFormat = "engine-model";
constexpr const char* kVersion = "1";
const std::set<std::string> kReservedKeys = {"format", "version", "graph", "thresholds"};

// ---- Graph to JSON ----

json attrs_to_json(const Attrs& a, const std::string& where) {
    const Attrs d;
    json j = json::object();
    auto put_float = [&](const char* key, float v, float dv) {
        if (v == dv) return;
        check(std::isfinite(v), where + ": attribute " + key + " is not finite and cannot be stored");
        j[key] = v;
    };
    if (!std::equal(a.kernel, a.kernel + 2, d.kernel)) j["kernel"] = a.kernel;
    if (!std::equal(a.stride, a.stride + 2, d.stride)) j["stride"] = a.stride;
    if (!std::equal(a.pad, a.pad + 4, d.pad)) j["pad"] = a.pad;
    if (!std::equal(a.dilation, a.dilation + 2, d.dilation)) j["dilation"] = a.dilation;
    if (a.groups != d.groups) j["groups"] = a.groups;
    if (a.ceil_mode != d.ceil_mode) j["ceil_mode"] = a.ceil_mode;
    if (a.count_include_pad != d.count_include_pad) j["count_include_pad"] = a.count_include_pad;
    put_float("epsilon", a.epsilon, d.epsilon);
    put_float("momentum", a.momentum, d.momentum);
    put_float("alpha", a.alpha, d.alpha);
    put_float("beta", a.beta, d.beta);
    if (a.trans_a != d.trans_a) j["trans_a"] = a.trans_a;
    if (a.trans_b != d.trans_b) j["trans_b"] = a.trans_b;
    if (a.axis != d.axis) j["axis"] = a.axis;
    if (a.pads != d.pads) j["pads"] = a.pads;
    put_float("pad_value", a.pad_value, d.pad_value);
    put_float("ratio", a.ratio, d.ratio);
    return j;
}

// Tensor keys: the node name where it is unique among constants, else "<name>#<index>".
std::vector<std::string> tensor_keys(const Graph& g) {
    std::map<std::string, int> count;
    for (const Node& n : g.nodes)
        if (n.op == Op::Constant) ++count[n.name];
    std::set<std::string> used;
    std::vector<std::string> keys(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        if (n.op == Op::Constant && count[n.name] == 1 && !n.name.empty() && n.name != "__metadata__")
            used.insert(keys[i] = n.name);
    }
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        if (g.nodes[i].op != Op::Constant || !keys[i].empty()) continue;
        std::string key = g.nodes[i].name + "#" + std::to_string(i);
        while (used.count(key)) key += "_";
        used.insert(keys[i] = key);
    }
    return keys;
}

json graph_to_json(const Graph& g, const std::vector<std::string>& keys) {
    json nodes = json::array();
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        json j = {{"op", op_name(n.op)}, {"name", n.name}, {"inputs", n.inputs}};
        json attrs = attrs_to_json(n.attrs, "node '" + n.name + "'");
        if (!attrs.empty()) j["attrs"] = std::move(attrs);
        if (n.op == Op::Input) j["input_dims"] = n.input_dims;
        if (n.op == Op::Constant) j["tensor"] = keys[i];
        if (n.trainable) j["trainable"] = true;
        nodes.push_back(std::move(j));
    }
    return {
        {"nodes", std::move(nodes)}, {"inputs", g.inputs}, {"outputs", g.outputs}, {"output_names", g.output_names}};
}

json thresholds_to_json(const std::vector<float>& q) {
    json j = json::array();
    for (float v : q) j.push_back(v);
    return j;
}

// ---- JSON to graph (every field checked: the file may be corrupt or hostile) ----

int64_t get_int(const json& j, const std::string& what) {
    check(j.is_number_integer() && (!j.is_number_unsigned() || j.get<uint64_t>() <= uint64_t(INT64_MAX)),
          what + " must be an integer");
    return j.get<int64_t>();
}

int get_index(const json& j, const std::string& what) {
    int64_t v = get_int(j, what);
    check(v >= INT32_MIN && v <= INT32_MAX, what + " out of range");
    return static_cast<int>(v);
}

float get_float(const json& j, const std::string& what) {
    check(j.is_number(), what + " must be a number");
    return j.get<float>();
}

bool get_bool(const json& j, const std::string& what) {
    check(j.is_boolean(), what + " must be true or false");
    return j.get<bool>();
}

std::string get_string(const json& j, const std::string& what) {
    check(j.is_string(), what + " must be a string");
    return j.get<std::string>();
}

const json& get_array(const json& j, const std::string& what, size_t size = SIZE_MAX) {
    check(j.is_array() && (size == SIZE_MAX || j.size() == size),
          what + (size == SIZE_MAX ? " must be an array" : " must be an array of " + std::to_string(size)));
    return j;
}

std::vector<int64_t> get_ints(const json& j, const std::string& what) {
    std::vector<int64_t> out;
    for (const json& v : get_array(j, what)) out.push_back(get_int(v, what + " entry"));
    return out;
}

std::vector<int> get_indices(const json& j, const std::string& what) {
    std::vector<int> out;
    for (const json& v : get_array(j, what)) out.push_back(get_index(v, what + " entry"));
    return out;
}

void get_fixed(const json& j, const std::string& what, int64_t* dst, size_t n) {
    const json& a = get_array(j, what, n);
    for (size_t i = 0; i < n; ++i) dst[i] = get_int(a[i], what);
}

Attrs attrs_from_json(const json& j, const std::string& where) {
    check(j.is_object(), where + ": attrs must be an object");
    Attrs a;
    for (const auto& [key, v] : j.items()) {
        const std::string what = where + ": attribute " + key;
        if (key == "kernel")
            get_fixed(v, what, a.kernel, 2);
        else if (key == "stride")
            get_fixed(v, what, a.stride, 2);
        else if (key == "pad")
            get_fixed(v, what, a.pad, 4);
        else if (key == "dilation")
            get_fixed(v, what, a.dilation, 2);
        else if (key == "groups")
            a.groups = get_int(v, what);
        else if (key == "ceil_mode")
            a.ceil_mode = get_bool(v, what);
        else if (key == "count_include_pad")
            a.count_include_pad = get_bool(v, what);
        else if (key == "epsilon")
            a.epsilon = get_float(v, what);
        else if (key == "momentum")
            a.momentum = get_float(v, what);
        else if (key == "alpha")
            a.alpha = get_float(v, what);
        else if (key == "beta")
            a.beta = get_float(v, what);
        else if (key == "trans_a")
            a.trans_a = get_bool(v, what);
        else if (key == "trans_b")
            a.trans_b = get_bool(v, what);
        else if (key == "axis")
            a.axis = get_int(v, what);
        else if (key == "pads")
            a.pads = get_ints(v, what);
        else if (key == "pad_value")
            a.pad_value = get_float(v, what);
        else if (key == "ratio")
            a.ratio = get_float(v, what);
        else
            fail(where + ": unknown attribute '" + key + "'");
    }
    return a;
}

Node node_from_json(const json& j, size_t index, std::map<std::string, Tensor>& tensors, std::set<std::string>& used) {
    std::string where = "node " + std::to_string(index);
    check(j.is_object(), where + ": not a JSON object");
    Node n;
    n.name = get_string(j.contains("name") ? j["name"] : json(), where + ": name");
    where = "node '" + n.name + "'";
    std::string op = get_string(j.contains("op") ? j["op"] : json(), where + ": op");
    n.op = op_from_name(op);
    check(n.op != Op::Count, where + ": unknown op '" + op + "'");
    where += " (" + op + ")";
    for (const auto& [key, v] : j.items()) {
        if (key == "op" || key == "name")
            continue;
        else if (key == "inputs")
            n.inputs = get_indices(v, where + ": inputs");
        else if (key == "attrs")
            n.attrs = attrs_from_json(v, where);
        else if (key == "input_dims" && n.op == Op::Input)
            n.input_dims = get_ints(v, where + ": input_dims");
        else if (key == "trainable")
            n.trainable = get_bool(v, where + ": trainable");
        else if (key == "tensor" && n.op == Op::Constant) {
            std::string k = get_string(v, where + ": tensor");
            auto it = tensors.find(k);
            check(it != tensors.end(), where + ": tensor '" + k + "' is not in the file");
            check(used.insert(k).second, where + ": tensor '" + k + "' is used by two nodes");
            n.value = std::move(it->second);
        } else {
            fail(where + ": unexpected field '" + key + "'");
        }
    }
    check(n.op != Op::Constant || j.contains("tensor"), where + ": constant without a tensor");
    check(n.op != Op::Input || j.contains("input_dims"), where + ": input without input_dims");
    return n;
}

Graph graph_from_json(const json& j, std::map<std::string, Tensor>& tensors) {
    check(j.is_object(), "graph is not a JSON object");
    for (const auto& [key, v] : j.items())
        check(key == "nodes" || key == "inputs" || key == "outputs" || key == "output_names",
              "graph: unexpected field '" + key + "'");
    check(j.contains("nodes") && j.contains("inputs") && j.contains("outputs"),
          "graph needs nodes, inputs and outputs");
    Graph g;
    std::set<std::string> used;
    const json& nodes = get_array(j["nodes"], "graph nodes");
    for (size_t i = 0; i < nodes.size(); ++i) g.nodes.push_back(node_from_json(nodes[i], i, tensors, used));
    g.inputs = get_indices(j["inputs"], "graph inputs");
    g.outputs = get_indices(j["outputs"], "graph outputs");
    if (j.contains("output_names"))
        for (const json& v : get_array(j["output_names"], "graph output_names"))
            g.output_names.push_back(get_string(v, "graph output name"));
    for (const auto& [key, t] : tensors) check(used.count(key), "tensor '" + key + "' is not used by the graph");
    return g;
}

// A safetensors file starts with its header length and then '{'.
bool looks_native(const unsigned char* head, size_t n, uintmax_t size) {
    if (n < 9 || head[8] != '{') return false;
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | head[i];
    return len <= size - 8;
}

}  // namespace

Model load_native_model(const std::string& path) {
    std::map<std::string, std::string> meta;
    std::map<std::string, Tensor> tensors = read_safetensors(path, &meta);
    auto field = [&](const char* key) -> const std::string& {
        auto it = meta.find(key);
        check(it != meta.end(),
              path + ": safetensors file without \"" + key + "\" metadata: a weights file, not an engine model");
        return it->second;
    };
    const std::string& format = field("format");
    check(format == kFormat, path + ": metadata format '" + format + "' is not '" + kFormat + "'");
    const std::string& version = field("version");
    check(version == kVersion, path + ": unsupported engine-model version '" + version + "'");
    json graph = json::parse(field("graph"), nullptr, false);
    check(!graph.is_discarded(), path + ": graph metadata is not valid JSON");
    json thresholds = json::parse(field("thresholds"), nullptr, false);
    check(!thresholds.is_discarded(), path + ": thresholds metadata is not valid JSON");
    Model m;
    try {
        m.graph = graph_from_json(graph, tensors);
        for (const json& q : get_array(thresholds, "thresholds")) m.thresholds.push_back(get_float(q, "threshold"));
        m.validate();
    } catch (const Error& e) {
        fail(path + ": " + e.what());
    } catch (const json::exception& e) {  // a type mismatch the checks above missed
        fail(path + ": graph metadata: " + e.what());
    }
    for (auto& [key, value] : meta)
        if (!kReservedKeys.count(key)) m.metadata[key] = value;
    return m;
}

ModelFormat model_file_format(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail(path + ": no such file");
    if (!std::filesystem::is_regular_file(path, ec)) fail(path + ": not a regular file");
    uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) fail(path + ": cannot read size (" + ec.message() + ")");
    unsigned char head[9] = {};
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path + ": cannot open (" + std::strerror(errno) + ")");
    in.read(reinterpret_cast<char*>(head), sizeof head);
    size_t got = static_cast<size_t>(in.gcount());
    in.close();

    if (looks_native(head, got, size)) return ModelFormat::Native;
    // ONNX has no magic number, but every exporter writes ir_version (field 1, varint: tag 0x08)
    // first. A '{' after 8 bytes still means a (damaged) native file, unless the name says ONNX.
    const bool onnx_name = path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
    const bool brace = got == 9 && head[8] == '{';
    if (onnx_name || (!brace && got > 0 && head[0] == 0x08)) return ModelFormat::Onnx;
    if (brace) return ModelFormat::Native;  // load_native_model reports what is wrong with it
    fail(path + ": not a model file (neither native nor ONNX)");
}

void save_model(const Model& model, const std::string& path) {
    try {
        model.validate();
    } catch (const Error& e) {
        fail(path + ": refusing to save an invalid model: " + e.what());
    }
    std::vector<std::string> keys = tensor_keys(model.graph);
    std::map<std::string, std::string> meta;
    for (const auto& [key, value] : model.metadata) {
        check(!kReservedKeys.count(key), path + ": model metadata key '" + key + "' is reserved by the file format");
        meta[key] = value;
    }
    meta["format"] = kFormat;
    meta["version"] = kVersion;
    try {
        meta["graph"] = graph_to_json(model.graph, keys).dump();
        meta["thresholds"] = thresholds_to_json(model.thresholds).dump();
    } catch (const Error& e) {
        fail(path + ": " + e.what());
    } catch (const json::exception& e) {  // invalid UTF-8 in a name
        fail(path + ": cannot encode the graph (" + e.what() + ")");
    }
    std::vector<std::pair<std::string, const Tensor*>> tensors;
    for (size_t i = 0; i < model.graph.nodes.size(); ++i)
        if (model.graph.nodes[i].op == Op::Constant) tensors.emplace_back(keys[i], &model.graph.nodes[i].value);
    write_safetensors(path, tensors, meta);
}

std::string model_hash(const Model& model) {
    std::vector<std::string> keys = tensor_keys(model.graph);
    Sha256 h;
    // Canonical: nlohmann::json objects are key-sorted, so dump() is deterministic.
    h.update(std::string("engine-model-hash/1\n"));
    h.update(graph_to_json(model.graph, keys).dump(-1, ' ', false, json::error_handler_t::replace));
    h.update(std::string("\n"));
    h.update(thresholds_to_json(model.thresholds).dump());
    h.update(std::string("\n"));
    for (size_t i = 0; i < model.graph.nodes.size(); ++i) {
        const Node& n = model.graph.nodes[i];
        if (n.op != Op::Constant) continue;
        h.update(keys[i] + "\n" + n.value.shape().str() + "\n");
        h.update(n.value.values().data(), n.value.values().size() * sizeof(float));
    }
    return h.hex();
}

}  // namespace engine
