// The ONNX importer on small hand-built models: what it maps to which attributes, and that it
// refuses, naming file, node and reason, whatever it cannot represent.
#include "engine/config.h"
#include <doctest/doctest.h>

#include "test_util.h"

#include <cstdio>

#ifdef ENGINE_WITH_ONNX
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/onnx_import.h"
#include "onnx_builder.h"

using namespace test;

TEST_CASE("onnx import: refusals name the file, the node and the reason") {
    SUBCASE("unsupported operator") {
        OnnxBuilder b;
        b.input("x", {-1, 4});
        b.node("Tanh", {"x"}, "y", "t1");
        b.output("y");
        const std::string e = import_error(b, "tanh");
        CHECK(e.find("node 't1' (Tanh): unsupported operator") != std::string::npos);
        CHECK(e.rfind(std::filesystem::temp_directory_path().string(), 0) == 0);  // starts with the file
        CHECK(e.find("_tanh.onnx: node") != std::string::npos);
    }
    SUBCASE("unknown attribute of a supported operator") {
        OnnxBuilder b;
        b.input("x", {-1, 4});
        set_int(b.node("Relu", {"x"}, "y", "r"), "foo", 3);
        b.output("y");
        CHECK(import_error(b, "attr").find("node 'r' (Relu): attribute foo=3 not supported") != std::string::npos);
    }
    SUBCASE("Pad mode other than constant") {
        OnnxBuilder b(10);
        b.input("x", {-1, 1, 2, 2});
        auto* n = b.node("Pad", {"x"}, "y", "p");
        set_string(n, "mode", "reflect");
        set_ints(n, "pads", {0, 0, 1, 1, 0, 0, 1, 1});
        b.output("y");
        CHECK(import_error(b, "pad").find("attribute mode=reflect not supported") != std::string::npos);
    }
    SUBCASE("Softmax before opset 13 along an axis that is not the last") {
        OnnxBuilder b(11);
        b.input("x", {-1, 3, 5});
        set_int(b.node("Softmax", {"x"}, "y", "s"), "axis", 1);
        b.output("y");
        CHECK(import_error(b, "softmax").find("node 's' (Softmax): attribute axis=1 not supported") !=
              std::string::npos);
    }
    SUBCASE("a symbolic dimension other than the batch") {
        OnnxBuilder b;
        b.input("x", {1, -1});
        b.node("Relu", {"x"}, "y");
        b.output("y");
        CHECK(import_error(b, "dims").find("input 'x': dimension 1 is symbolic") != std::string::npos);
    }
    SUBCASE("integer data and outputs") {
        OnnxBuilder b;
        b.input("x", {-1, 4}, onnx::TensorProto::INT64);
        b.node("Relu", {"x"}, "y");
        b.output("y", onnx::TensorProto::INT64);
        CHECK(import_error(b, "int").find("input 'x' has element type INT64") != std::string::npos);
    }
    SUBCASE("BatchNorm in training mode") {
        OnnxBuilder b(15);
        b.input("x", {-1, 2, 3, 3});
        for (const char* p : {"s", "b", "m", "v"}) b.init(p, {2}, {1, 1});
        set_int(b.node("BatchNormalization", {"x", "s", "b", "m", "v"}, "y", "bn"), "training_mode", 1);
        b.output("y");
        CHECK(import_error(b, "bn").find("attribute training_mode=1 not supported") != std::string::npos);
    }
    SUBCASE("missing and unreadable files") {
        CHECK_THROWS_WITH_AS(engine::import_onnx("/nonexistent/m.onnx"), "/nonexistent/m.onnx: cannot open",
                             engine::Error);
        const std::string path = (std::filesystem::temp_directory_path() / "engine_onnx_import_garbage.onnx").string();
        std::ofstream(path) << "\xff\xff\xff not protobuf";
        CHECK_THROWS_WITH_AS(engine::import_onnx(path), (path + ": not an ONNX model (protobuf parse failed)").c_str(),
                             engine::Error);
        std::filesystem::remove(path);
    }
}

TEST_CASE("onnx import: attributes resolved at import") {
    SUBCASE("auto_pad SAME_LOWER puts the odd padding first") {
        OnnxBuilder b(11);
        b.input("x", {-1, 1, 4, 4});
        b.init("w", {1, 1, 2, 2}, {1, 1, 1, 1});
        set_string(b.node("Conv", {"x", "w"}, "y"), "auto_pad", "SAME_LOWER");
        b.output("y");
        const engine::Model m = import(b, "same");
        const auto& conv = only(m, engine::Op::Conv);
        // in 4, kernel 2, stride 1: output 4 needs 1 pad in total, at the beginning for SAME_LOWER.
        CHECK(std::vector<int64_t>(conv.attrs.pad, conv.attrs.pad + 4) == std::vector<int64_t>{1, 1, 0, 0});
        CHECK(m.graph.nodes[conv.inputs[1]].trainable);
        CHECK(m.graph.nodes[m.graph.inputs[0]].input_dims == std::vector<int64_t>{-1, 1, 4, 4});
    }
    SUBCASE("Pad reads its pads from an int64 Constant and its value from a bound input") {
        OnnxBuilder b(13);
        b.input("x", {-1, 1, 2, 2});
        b.input("value", {});
        auto* c = b.node("Constant", {}, "pads");
        auto* t = attr(c, "value", onnx::AttributeProto::TENSOR)->mutable_t();
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(8);
        for (int64_t v : {0, 0, 1, 2, 0, 0, 3, 4}) t->add_int64_data(v);
        b.node("Pad", {"x", "pads", "value"}, "y");
        b.output("y");
        const engine::Model m = import(b, "padconst", {{"value", engine::Tensor(engine::Shape{}, {2.5f})}});
        const auto& pad = only(m, engine::Op::Pad);
        CHECK(pad.attrs.pads == std::vector<int64_t>{0, 0, 1, 2, 0, 0, 3, 4});
        CHECK(pad.attrs.pad_value == 2.5f);
        CHECK(m.graph.inputs.size() == 1);  // the bound input is not a graph input any more
        for (const auto& n : m.graph.nodes) CHECK(n.op != engine::Op::Constant);  // pads live in the attribute
    }
    SUBCASE("a Pad of zeros is dropped") {
        OnnxBuilder b(10);
        b.input("x", {-1, 1, 2, 2});
        set_ints(b.node("Pad", {"x"}, "p"), "pads", std::vector<int64_t>(8, 0));
        b.node("Relu", {"p"}, "y");
        b.output("y");
        const engine::Model m = import(b, "padzero");
        REQUIRE(m.graph.nodes.size() == 2);
        CHECK(only(m, engine::Op::Relu).inputs == std::vector<int>{m.graph.inputs[0]});
    }
    SUBCASE("BatchNorm momentum follows PyTorch's convention; running statistics are not trained") {
        OnnxBuilder b(15);
        b.input("x", {-1, 2, 3, 3});
        for (const char* p : {"s", "b", "m", "v"}) b.init(p, {2}, {1, 1});
        auto* n = b.node("BatchNormalization", {"x", "s", "b", "m", "v"}, "y");
        set_float(n, "momentum", 0.8f);
        set_float(n, "epsilon", 1e-3f);
        b.output("y");
        const engine::Model m = import(b, "bnattrs");
        const auto& bn = only(m, engine::Op::BatchNorm);
        CHECK(bn.attrs.momentum == doctest::Approx(0.2f));
        CHECK(bn.attrs.epsilon == 1e-3f);
        CHECK(m.graph.nodes[bn.inputs[1]].trainable);
        CHECK(m.graph.nodes[bn.inputs[2]].trainable);
        CHECK_FALSE(m.graph.nodes[bn.inputs[3]].trainable);
        CHECK_FALSE(m.graph.nodes[bn.inputs[4]].trainable);
    }
    SUBCASE("Identity is dropped and negative axes become positive") {
        OnnxBuilder b(13);
        b.input("x", {-1, 3, 4});
        b.node("Identity", {"x"}, "i");
        set_int(b.node("Flatten", {"i"}, "f"), "axis", -1);
        b.node("Softmax", {"f"}, "y");  // opset 13 default axis -1
        b.output("y");
        const engine::Model m = import(b, "ident");
        REQUIRE(m.graph.nodes.size() == 3);  // x, Flatten, Softmax
        const auto& flat = only(m, engine::Op::Flatten);
        CHECK(flat.attrs.axis == 2);
        CHECK(flat.inputs == std::vector<int>{m.graph.inputs[0]});
        CHECK(only(m, engine::Op::Softmax).attrs.axis == 1);
        CHECK(m.graph.output_names == std::vector<std::string>{"y"});
        CHECK(m.thresholds == std::vector<float>{0.9f});
    }
}

#else
TEST_CASE("onnx import") { test::skip("onnx import", "built without ONNX import"); }
#endif
