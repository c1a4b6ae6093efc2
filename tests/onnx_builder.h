// Hand-built ONNX models for the importer's tests: a ModelProto assembled with the protobuf API,
// written to a temporary file and imported. Needs ENGINE_WITH_ONNX.
#pragma once
#include <doctest/doctest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/error.h"
#include "engine/onnx_import.h"

namespace test {

// Builds a ModelProto and writes it to a temporary file for import_onnx.
struct OnnxBuilder {
    onnx::ModelProto m;
    explicit OnnxBuilder(int opset = 13) {
        m.set_ir_version(7);
        auto* o = m.add_opset_import();
        o->set_domain("");
        o->set_version(opset);
    }
    onnx::GraphProto* g() { return m.mutable_graph(); }
    // dims: -1 becomes the symbolic dimension "N".
    void input(const std::string& name, const std::vector<int64_t>& dims, int type = onnx::TensorProto::FLOAT) {
        auto* vi = g()->add_input();
        vi->set_name(name);
        auto* tt = vi->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(type);
        auto* shape = tt->mutable_shape();
        for (int64_t d : dims) {
            auto* dim = shape->add_dim();
            if (d < 0)
                dim->set_dim_param("N");
            else
                dim->set_dim_value(d);
        }
    }
    void output(const std::string& name, int type = onnx::TensorProto::FLOAT) {
        auto* vi = g()->add_output();
        vi->set_name(name);
        vi->mutable_type()->mutable_tensor_type()->set_elem_type(type);
    }
    onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out,
                          const std::string& name = "") {
        auto* n = g()->add_node();
        n->set_op_type(op);
        n->set_name(name);
        for (const auto& s : in) n->add_input(s);
        n->add_output(out);
        return n;
    }
    void init(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
        auto* t = g()->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::FLOAT);
        for (int64_t d : dims) t->add_dims(d);
        for (float v : values) t->add_float_data(v);
    }
    std::string save(const std::string& tag) {
        const std::string path = (std::filesystem::temp_directory_path() /
                                  ("engine_onnx_import_" + std::to_string(::getpid()) + "_" + tag + ".onnx"))
                                     .string();
        std::ofstream f(path, std::ios::binary);
        m.SerializeToOstream(&f);
        return path;
    }
};

inline onnx::AttributeProto* attr(onnx::NodeProto* n, const std::string& name,
                                  onnx::AttributeProto::AttributeType type) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(type);
    return a;
}
inline void set_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
    attr(n, name, onnx::AttributeProto::INT)->set_i(v);
}
inline void set_float(onnx::NodeProto* n, const std::string& name, float v) {
    attr(n, name, onnx::AttributeProto::FLOAT)->set_f(v);
}
inline void set_string(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    attr(n, name, onnx::AttributeProto::STRING)->set_s(v);
}
inline void set_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = attr(n, name, onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
}

inline std::string import_error(OnnxBuilder& b, const std::string& tag) {
    const std::string path = b.save(tag);
    try {
        engine::import_onnx(path);
    } catch (const engine::Error& e) {
        std::filesystem::remove(path);
        return e.what();
    }
    std::filesystem::remove(path);
    return "(imported)";
}

inline engine::Model import(OnnxBuilder& b, const std::string& tag,
                            const std::map<std::string, engine::Tensor>& bind = {}) {
    const std::string path = b.save(tag);
    engine::Model m = engine::import_onnx(path, bind);
    std::filesystem::remove(path);
    return m;
}

inline const engine::Node& only(const engine::Model& m, engine::Op op) {
    const engine::Node* found = nullptr;
    for (const auto& n : m.graph.nodes)
        if (n.op == op) {
            REQUIRE(found == nullptr);
            found = &n;
        }
    REQUIRE(found != nullptr);
    return *found;
}

}  // namespace test
