// Native model files and safetensors: round trips, hand-made files, and every kind of bad file
// (each must throw engine::Error naming the file, never crash or leave a half file behind).
#include "engine/config.h"
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/error.h"
#include "engine/hash.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "engine/safetensors.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace engine;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("engine_test_model_file." + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, ec);
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::string& bytes) {
    // Remove first: truncating a file with data makes ext4 flush it on close (auto_da_alloc), ms each.
    std::error_code ec;
    fs::remove(path, ec);
    std::ofstream(path, std::ios::binary) << bytes;
}

// Splits a safetensors file into its header JSON and data section, edits, and rejoins.
void edit_header(const std::string& path, const std::function<void(json&)>& edit) {
    std::string bytes = read_bytes(path);
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    json header = json::parse(bytes.substr(8, n));
    edit(header);
    std::string text = header.dump();
    uint64_t len = text.size();
    write_bytes(path, std::string(reinterpret_cast<char*>(&len), 8) + text + bytes.substr(8 + n));
}

// Edits the graph JSON stored in a native model's metadata.
void edit_graph(const std::string& path, const std::function<void(json&)>& edit) {
    edit_header(path, [&](json& h) {
        json g = json::parse(h["__metadata__"]["graph"].get<std::string>());
        edit(g);
        h["__metadata__"]["graph"] = g.dump();
    });
}

json& node_named(json& graph, const std::string& name) {
    for (json& n : graph["nodes"])
        if (n["name"] == name) return n;
    throw std::runtime_error("no node " + name);
}

// The loader must throw engine::Error whose message names the file and contains `what`.
void expect_load_error(const std::string& path, const std::string& what) {
    try {
        load_model(path);
        FAIL("loaded a bad file without error, expected: " << what);
    } catch (const Error& e) {
        std::string msg = e.what();
        INFO(msg);
        CHECK(msg.rfind(path + ":", 0) == 0);
        CHECK(msg.find(what) != std::string::npos);
        CHECK(msg.find('\n') == std::string::npos);
    }
}

void check_same_model(const Model& a, const Model& b) {
    REQUIRE(a.graph.nodes.size() == b.graph.nodes.size());
    for (size_t i = 0; i < a.graph.nodes.size(); ++i) {
        const Node &x = a.graph.nodes[i], &y = b.graph.nodes[i];
        INFO("node " << x.name);
        CHECK(x.op == y.op);
        CHECK(x.name == y.name);
        CHECK(x.inputs == y.inputs);
        CHECK(x.input_dims == y.input_dims);
        CHECK(x.trainable == y.trainable);
        CHECK(x.value.shape() == y.value.shape());
        CHECK(x.value.values() == y.value.values());
        const Attrs &p = x.attrs, &q = y.attrs;
        CHECK(std::equal(p.kernel, p.kernel + 2, q.kernel));
        CHECK(std::equal(p.stride, p.stride + 2, q.stride));
        CHECK(std::equal(p.pad, p.pad + 4, q.pad));
        CHECK(std::equal(p.dilation, p.dilation + 2, q.dilation));
        CHECK(p.groups == q.groups);
        CHECK(p.ceil_mode == q.ceil_mode);
        CHECK(p.count_include_pad == q.count_include_pad);
        CHECK(p.epsilon == q.epsilon);
        CHECK(p.momentum == q.momentum);
        CHECK(p.alpha == q.alpha);
        CHECK(p.beta == q.beta);
        CHECK(p.trans_a == q.trans_a);
        CHECK(p.trans_b == q.trans_b);
        CHECK(p.axis == q.axis);
        CHECK(p.pads == q.pads);
        CHECK(p.pad_value == q.pad_value);
        CHECK(p.ratio == q.ratio);
    }
    CHECK(a.graph.inputs == b.graph.inputs);
    CHECK(a.graph.outputs == b.graph.outputs);
    CHECK(a.graph.output_names == b.graph.output_names);
    CHECK(a.thresholds == b.thresholds);
    CHECK(a.metadata == b.metadata);
}

std::vector<std::vector<float>> all_logits(const Model& m, const Tensor& images) {
    auto backend = make_backend("ref");
    Plan plan(m, *backend, static_cast<int>(images.shape()[0]));
    plan.run_all(images.data(), static_cast<int>(images.shape()[0]));
    std::vector<std::vector<float>> out;
    for (int k = 0; k < m.num_exits(); ++k) {
        TensorView v = plan.exit_logits(k);
        out.emplace_back(v.data, v.data + v.numel());
    }
    return out;
}

}  // namespace

TEST_CASE("native model: save and load give back the same model and the same logits") {
    TempDir dir;
    Model m = test::tiny_model(3);
    // Side branches (no exit reads them) carrying every attribute the tiny model leaves at its default.
    Graph& g = m.graph;
    const int relu1 = g.find("relu1");
    Attrs pad;
    pad.pads = {0, 0, 1, 2, 0, 0, 3, 4};
    pad.pad_value = -0.25f;
    int x = g.add_op(Op::Pad, "side.pad", {relu1}, pad);
    Attrs drop;
    drop.ratio = 0.125f;
    x = g.add_op(Op::Dropout, "side.drop", {x}, drop);
    Attrs pool;
    pool.kernel[0] = 3;
    pool.kernel[1] = 2;
    pool.stride[1] = 2;
    pool.pad[3] = 1;
    pool.ceil_mode = true;
    pool.count_include_pad = true;
    g.add_op(Op::AvgPool, "side.avg", {x}, pool);
    Attrs grouped;
    grouped.kernel[0] = grouped.kernel[1] = 3;
    grouped.dilation[0] = grouped.dilation[1] = 2;
    grouped.groups = 2;
    int gw = g.add_constant("side.conv.weight", test::random_tensor({2, 2, 3, 3}, 12), false);
    g.add_op(Op::Conv, "side.conv", {relu1, gw}, grouped);
    Attrs gemm;
    gemm.alpha = 0.1f;
    gemm.beta = 0.5f;
    int gb = g.add_constant("side.gemm.b", test::random_tensor({6, 10}, 13), false);
    g.add_op(Op::Gemm, "side.gemm", {g.find("final.flatten"), gb}, gemm);
    Attrs soft;
    soft.axis = 0;
    g.add_op(Op::Softmax, "side.softmax", {g.outputs[1]}, soft);
    g.nodes[g.find("pool2")].attrs.ceil_mode = true;
    m.graph.nodes[m.graph.find("bn1")].attrs.momentum = 0.01f;
    m.metadata["train"] = "engine_train --epochs 3 \"quoted\"\n";
    const std::string path = dir / "tiny.model";
    save_model(m, path);
    Model back = load_model(path);
    check_same_model(m, back);
    CHECK(model_hash(back) == model_hash(m));

    Tensor images = test::random_tensor({3, 3, 8, 8}, 11, 0, 1);
    auto a = all_logits(m, images), b = all_logits(back, images);
    REQUIRE(a.size() == 2);
    for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == b[k]);

    // The file is plain safetensors: one tensor per constant, keyed by node name.
    std::map<std::string, std::string> meta;
    auto tensors = read_safetensors(path, &meta);
    CHECK(meta["format"] == "engine-model");
    CHECK(meta["version"] == "1");
    CHECK(meta["arch"] == "tiny");
    CHECK(tensors.size() == 13);
    CHECK(tensors.at("conv2.weight").values() == m.graph.nodes[m.graph.find("conv2.weight")].value.values());
    CHECK(read_safetensors_metadata(path) == meta);
}

TEST_CASE("native model: duplicate constant names get distinct tensor keys") {
    TempDir dir;
    Model m = test::tiny_model(4);
    auto rename = [&](const char* from, std::string to) { m.graph.nodes[m.graph.find(from)].name = std::move(to); };
    rename("conv1.bias", "w");
    rename("conv2.weight", "w");
    rename("bn1.weight", "");
    const std::string path = dir / "dup.model";
    save_model(m, path);
    check_same_model(m, load_model(path));
    auto tensors = read_safetensors(path);
    CHECK(tensors.count("w") == 0);
    CHECK(tensors.size() == 11);
}

TEST_CASE("model_hash changes with weights, graph and thresholds, not with metadata") {
    Model m = test::tiny_model(5);
    const std::string h = model_hash(m);
    CHECK(h.size() == 64);
    CHECK(h == model_hash(test::tiny_model(5)));
    CHECK(h != model_hash(test::tiny_model(6)));

    Model w = m;
    float& v = w.graph.nodes[w.graph.find("final.fc.bias")].value[0];
    v = std::nextafter(v, 1.0f);
    CHECK(model_hash(w) != h);

    Model t = m;
    t.thresholds[0] = 0.61f;
    CHECK(model_hash(t) != h);

    Model g = m;
    g.graph.nodes[g.graph.find("pool2")].attrs.ceil_mode = true;
    CHECK(model_hash(g) != h);

    Model meta = m;
    meta.metadata["note"] = "retrained";
    CHECK(model_hash(meta) == h);
}

TEST_CASE("sha256 matches the FIPS 180-2 test vectors") {
    CHECK(sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    TempDir dir;
    std::string million(1000000, 'a');
    write_bytes(dir / "a.bin", million);
    CHECK(sha256_file(dir / "a.bin") == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK_THROWS_AS(sha256_file(dir / "missing"), Error);
}

TEST_CASE("safetensors: write and read back tensors of every rank, with metadata") {
    TempDir dir;
    Tensor scalar({}, {2.5f});
    Tensor empty({0, 3});
    Tensor six = test::random_tensor({1, 2, 1, 3, 2, 1}, 9);
    Tensor mat = test::random_tensor({4, 5}, 10);
    std::map<std::string, std::string> meta = {{"arch", "x"}, {"unicode", "\xc3\xa9t\xc3\xa9"}};
    const std::string path = dir / "t.safetensors";
    write_safetensors(path, {{"scalar", &scalar}, {"empty", &empty}, {"six", &six}, {"mat", &mat}}, meta);

    std::string bytes = read_bytes(path);
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    CHECK((8 + n) % 8 == 0);  // data section aligned
    CHECK(bytes.size() == 8 + n + 4 * (1 + 0 + 12 + 20));

    std::map<std::string, std::string> back_meta;
    auto back = read_safetensors(path, &back_meta);
    CHECK(back_meta == meta);
    REQUIRE(back.size() == 4);
    CHECK(back.at("scalar").shape() == Shape{});
    CHECK(back.at("scalar").values() == scalar.values());
    CHECK(back.at("empty").shape() == Shape{0, 3});
    CHECK(back.at("six").shape() == six.shape());
    CHECK(back.at("six").values() == six.values());
    CHECK(back.at("mat").values() == mat.values());

    CHECK_THROWS_AS(write_safetensors(dir / "d.safetensors", {{"a", &mat}, {"a", &mat}}, {}), Error);
    CHECK_THROWS_AS(write_safetensors(dir / "m.safetensors", {{"__metadata__", &mat}}, {}), Error);
    CHECK_FALSE(fs::exists(dir / "d.safetensors"));
}

TEST_CASE("safetensors: a hand-written file with every dtype converts to the expected floats") {
    TempDir dir;
    // Values chosen so that each conversion has one exact expected float.
    std::string data;
    auto put = [&](const void* p, size_t n) { data.append(static_cast<const char*>(p), n); };
    double f64[2] = {0.1, -3.0};
    uint16_t f16[4] = {0x3C00, 0xC000, 0x0001, 0x7C00};  // 1, -2, 2^-24 (subnormal), +inf
    uint16_t bf16[2] = {0x3F80, 0xC0A0};                 // 1, -5
    int64_t i64[1] = {-5};
    int32_t i32[2] = {7, -8};
    int8_t i8[1] = {-100};
    uint8_t u8[2] = {200, 0};
    put(f64, sizeof f64);
    put(f16, sizeof f16);
    put(bf16, sizeof bf16);
    put(i64, sizeof i64);
    put(i32, sizeof i32);
    put(i8, sizeof i8);
    put(u8, sizeof u8);
    // Header written by hand, in an order that differs from the data order.
    std::string header = R"({"u8":{"dtype":"U8","shape":[2],"data_offsets":[47,49]},)"
                         R"("f64":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
                         R"("f16":{"dtype":"F16","shape":[2,2],"data_offsets":[16,24]},)"
                         R"("bf16":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]},)"
                         R"("i64":{"dtype":"I64","shape":[],"data_offsets":[28,36]},)"
                         R"("i32":{"dtype":"I32","shape":[2,1],"data_offsets":[36,44]},)"
                         R"("i8":{"dtype":"I8","shape":[1],"data_offsets":[44,45]},)"
                         R"("pad":{"dtype":"BOOL","shape":[2],"data_offsets":[45,47]},)"
                         R"("__metadata__":{"k":"v"}}   )";
    data.insert(45, std::string("\x01\x00", 2));  // the BOOL tensor
    uint64_t len = header.size();
    const std::string path = dir / "dtypes.safetensors";
    write_bytes(path, std::string(reinterpret_cast<char*>(&len), 8) + header + data);
    std::map<std::string, std::string> meta;
    auto t = read_safetensors(path, &meta);
    CHECK(meta.at("k") == "v");
    CHECK(t.at("f64").values() == std::vector<float>{0.1f, -3.0f});
    CHECK(t.at("f16").values() == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), INFINITY});
    CHECK(t.at("bf16").values() == std::vector<float>{1.0f, -5.0f});
    CHECK(t.at("i64").shape() == Shape{});
    CHECK(t.at("i64").values() == std::vector<float>{-5.0f});
    CHECK(t.at("i32").shape() == Shape{2, 1});
    CHECK(t.at("i32").values() == std::vector<float>{7.0f, -8.0f});
    CHECK(t.at("i8").values() == std::vector<float>{-100.0f});
    CHECK(t.at("pad").values() == std::vector<float>{1.0f, 0.0f});
    CHECK(t.at("u8").values() == std::vector<float>{200.0f, 0.0f});
}

TEST_CASE("safetensors: bad headers are rejected with the file named") {
    TempDir dir;
    const std::string path = dir / "bad.safetensors";
    auto expect = [&](const std::string& header, const std::string& data, const std::string& what) {
        uint64_t len = header.size();
        write_bytes(path, std::string(reinterpret_cast<char*>(&len), 8) + header + data);
        try {
            read_safetensors(path);
            FAIL("accepted: " << header);
        } catch (const Error& e) {
            std::string msg = e.what();
            INFO(msg);
            CHECK(msg.rfind(path + ": ", 0) == 0);
            CHECK(msg.find(what) != std::string::npos);
        }
    };
    const std::string four(4, '\0'), eight(8, '\0');
    expect(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", four, "not valid JSON");
    expect(R"([1,2])", "", "header does not start");
    expect(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", four, "unsupported dtype");
    expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four, "need 8 bytes");
    expect(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four, "non-negative");
    expect(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four, "non-negative");
    expect(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1],"data_offsets":[0,4]}})", four, "rank 7");
    expect(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four, "decrease");
    expect(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "", "beyond the data section");
    expect(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight, "bytes after the last tensor");
    expect(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
        eight, "overlap");
    expect(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight, "gap");
    expect(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", four, "too large");
    expect(R"({"a":{"dtype":"F32","shape":[1]}})", four, "data_offsets");
    expect(R"({"__metadata__":{"k":1}})", "", "not a string");
    expect(R"({"a":7})", "", "not a JSON object");

    write_bytes(path, "\x05\x00");
    CHECK_THROWS_WITH_AS(read_safetensors(path), doctest::Contains("too short"), Error);
    write_bytes(path, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
    CHECK_THROWS_WITH_AS(read_safetensors(path), doctest::Contains("exceeds the file size"), Error);
    CHECK_THROWS_WITH_AS(read_safetensors(dir / "nope"), doctest::Contains("no such file"), Error);
    CHECK_THROWS_WITH_AS(read_safetensors(dir.path.string()), doctest::Contains("not a regular file"), Error);
}

TEST_CASE("load_model: every truncation of a native file is an error naming the file") {
    TempDir dir;
    const std::string good = dir / "good.model";
    save_model(test::tiny_model(8, 4, 3), good);
    const std::string bytes = read_bytes(good);
    const std::string path = dir / "cut.model";
    int cuts = 0, errors = 0;
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
        write_bytes(path, bytes.substr(0, cut));
        ++cuts;
        try {
            load_model(path);
        } catch (const Error& e) {
            errors += std::string(e.what()).rfind(path + ": ", 0) == 0;
        }
    }
    CHECK(cuts == static_cast<int>(bytes.size()));
    CHECK(errors == cuts);
}

TEST_CASE("load_model: corrupt and inconsistent native files") {
    TempDir dir;
    const std::string good = dir / "good.model";
    save_model(test::tiny_model(9), good);
    const std::string bytes = read_bytes(good);
    const std::string path = dir / "bad.model";
    auto fresh = [&] { write_bytes(path, bytes); };

    SUBCASE("header length too large") {
        std::string b = bytes;
        uint64_t huge = b.size();  // one byte more than what follows the length field
        std::memcpy(b.data(), &huge, 8);
        write_bytes(path, b);
        expect_load_error(path, "exceeds the file size");
        huge = ~uint64_t(0);
        std::memcpy(b.data(), &huge, 8);
        write_bytes(path, b);
        expect_load_error(path, "");
    }
    SUBCASE("corrupt header JSON") {
        std::string b = bytes;
        b[8 + 20] = '\x01';
        write_bytes(path, b);
        expect_load_error(path, "not valid JSON");
    }
    SUBCASE("corrupt graph JSON") {
        fresh();
        edit_header(path, [](json& h) { h["__metadata__"]["graph"] = "{\"nodes\": [}"; });
        expect_load_error(path, "graph metadata is not valid JSON");
    }
    SUBCASE("unknown op") {
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "relu1")["op"] = "Swish"; });
        expect_load_error(path, "unknown op 'Swish'");
    }
    SUBCASE("input index out of range, negative, or not earlier") {
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "relu1")["inputs"] = {999}; });
        expect_load_error(path, "input index 999");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "relu1")["inputs"] = {-1}; });
        expect_load_error(path, "input index -1");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "relu1")["inputs"] = {int64_t(1) << 40}; });
        expect_load_error(path, "out of range");
        fresh();
        edit_graph(path, [](json& g) { g["outputs"] = {3, 1000}; });
        expect_load_error(path, "output index 1000");
    }
    SUBCASE("tensor shape inconsistent with the graph") {
        fresh();  // same byte count, transposed shape: only shape inference can notice
        edit_header(path, [](json& h) { h["conv1.weight"]["shape"] = {3, 4, 3, 3}; });
        expect_load_error(path, "conv1");
    }
    SUBCASE("tensor size inconsistent with its offsets") {
        fresh();
        edit_header(path, [](json& h) { h["conv1.weight"]["shape"] = {4, 3, 3, 4}; });
        expect_load_error(path, "conv1.weight");
    }
    SUBCASE("missing, extra and shared tensors") {
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1.bias")["tensor"] = "nope"; });
        expect_load_error(path, "'nope' is not in the file");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1.bias")["tensor"] = "bn1.bias"; });
        expect_load_error(path, "used by two nodes");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1.bias").erase("tensor"); });
        expect_load_error(path, "constant without a tensor");
    }
    SUBCASE("bad attributes, fields and metadata") {
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1")["attrs"]["kernel"] = {3}; });
        expect_load_error(path, "attribute kernel");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1")["attrs"]["stride"] = {0, 0}; });
        expect_load_error(path, "stride");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1")["attrs"]["colour"] = 3; });
        expect_load_error(path, "unknown attribute 'colour'");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "image")["input_dims"] = {-1, 3, 0, 8}; });
        expect_load_error(path, "declared dimension 0");
        fresh();
        edit_graph(path, [](json& g) { node_named(g, "conv1")["name"] = 5; });
        expect_load_error(path, "name must be a string");
        fresh();
        edit_header(path, [](json& h) { h["__metadata__"]["thresholds"] = "[0.5]"; });
        expect_load_error(path, "1 thresholds for 2 exits");
        fresh();
        edit_header(path, [](json& h) { h["__metadata__"]["version"] = "2"; });
        expect_load_error(path, "version '2'");
        fresh();
        edit_header(path, [](json& h) { h["__metadata__"].erase("graph"); });
        expect_load_error(path, "without \"graph\"");
    }
    SUBCASE("exit that is not [batch, classes] logits") {
        fresh();
        edit_graph(path, [](json& g) { g["outputs"][0] = 3; });  // conv1's output, 4-D
        expect_load_error(path, "not [1,classes] logits");
    }
}

TEST_CASE("load_model: files that are not models") {
    TempDir dir;
    expect_load_error(dir / "missing.model", "no such file");
    expect_load_error(dir.path.string(), "not a regular file");
    write_bytes(dir / "text.txt", "hello, I am not a model\n");
    expect_load_error(dir / "text.txt", "not a model file (neither native nor ONNX)");
    write_bytes(dir / "empty", "");
    expect_load_error(dir / "empty", "not a model file");
    Tensor t({2}, {1, 2});
    write_safetensors(dir / "weights.safetensors", {{"t", &t}}, {{"arch", "x"}});
    expect_load_error(dir / "weights.safetensors", "weights file, not an engine model");
}

TEST_CASE("save_model never leaves a half file") {
    TempDir dir;
    Model m = test::tiny_model(10);
    auto leftovers = [&] {
        int n = 0;
        for (const auto& e : fs::recursive_directory_iterator(dir.path))
            n += e.path().filename().string().find(".tmp.") != std::string::npos;
        return n;
    };

    SUBCASE("directory that does not exist") {
        CHECK_THROWS_WITH_AS(save_model(m, dir / "no/such/dir/m.model"), doctest::Contains("no/such/dir/m.model"),
                             Error);
        CHECK(leftovers() == 0);
    }
    SUBCASE("rename fails: the target is a directory") {
        fs::create_directory(dir / "target");
        CHECK_THROWS_AS(save_model(m, dir / "target"), Error);
        CHECK(fs::is_directory(dir / "target"));
        CHECK(leftovers() == 0);
    }
    SUBCASE("unwritable directory") {
        fs::create_directory(dir / "ro");
        fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
        bool root = ::geteuid() == 0;  // root writes anyway; then the save simply succeeds
        if (!root) CHECK_THROWS_AS(save_model(m, dir / "ro/m.model"), Error);
        CHECK(leftovers() == 0);
        fs::permissions(dir / "ro", fs::perms::owner_all);
    }
    SUBCASE("a failure half-way keeps the old file intact") {
        const std::string path = dir / "m.model";
        save_model(m, path);
        const std::string before = read_bytes(path);
        CHECK_THROWS_AS(write_file_atomically(path,
                                              [](std::ostream& out) {
                                                  out << "half a file";
                                                  fail("disk full (simulated)");
                                              }),
                        Error);
        CHECK(read_bytes(path) == before);
        CHECK(leftovers() == 0);
    }
    SUBCASE("an invalid model is not written") {
        Model bad = m;
        bad.thresholds.push_back(0.5f);
        CHECK_THROWS_WITH_AS(save_model(bad, dir / "bad.model"), doctest::Contains("3 thresholds for 2 exits"), Error);
        CHECK_FALSE(fs::exists(dir / "bad.model"));
        Model reserved = m;
        reserved.metadata["graph"] = "x";
        CHECK_THROWS_WITH_AS(save_model(reserved, dir / "bad.model"), doctest::Contains("reserved"), Error);
        CHECK(leftovers() == 0);
    }
    SUBCASE("saving over an existing model replaces it") {
        const std::string path = dir / "m.model";
        save_model(m, path);
        Model other = test::tiny_model(11);
        save_model(other, path);
        CHECK(model_hash(load_model(path)) == model_hash(other));
        CHECK(leftovers() == 0);
    }
}

TEST_CASE("load_model reads the shared ONNX models") {
#ifdef ENGINE_WITH_ONNX
    if (!test::have_shared("load_model on ONNX")) return;
    // Chosen by content, not by name: the same bytes under another extension load too.
    TempDir dir;
    const std::string src = test::shared_dir() + "/models/resnet56_s1.onnx";
    fs::copy_file(src, dir / "renamed.bin");
    Model a = load_model(src), b = load_model(dir / "renamed.bin");
    CHECK(a.num_exits() == 7);
    CHECK(model_hash(a) == model_hash(b));
    // The imported model survives a native round trip with its hash intact.
    save_model(a, dir / "native.model");
    CHECK(model_hash(load_model(dir / "native.model")) == model_hash(a));
    // A PyTorch state dict is a safetensors file but not a model.
    expect_load_error(test::shared_dir() + "/models/resnet56_s1.safetensors", "not an engine model");
#endif
}
