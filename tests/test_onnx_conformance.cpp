// ONNX's own operator tests (Debian libonnx-testdata: model.onnx plus TensorProto inputs and
// expected outputs) for every operator the importer supports, run on each backend. A refusal is
// not a failure, but only the refusals listed below (things the engine deliberately does not
// represent) are expected; a wrong result always fails.
#include "engine/config.h"
#include <doctest/doctest.h>

#include <cstdio>

#ifdef ENGINE_WITH_ONNX
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/onnx_import.h"
#include "engine/plan.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

const char* kNodeTests = "/usr/share/libonnx-testdata/data/node";

// The operator family of a test directory, or "" when the importer does not claim the operator.
std::string family(const std::string& dir) {
    static const std::regex op_first(
        "test_(?:basic_|training_)?(conv|relu|add|sub|mul|div|maxpool|averagepool|globalaveragepool|flatten|gemm|"
        "softmax|batchnorm|dropout|identity)(?:_.*)?");
    static const std::regex pad("test_(constant|edge|reflect|wrap)_pad");
    std::smatch m;
    if (std::regex_match(dir, m, op_first)) return m[1];
    if (std::regex_match(dir, pad)) return "pad";
    return "";
}

// Tests the engine deliberately cannot represent, with the reason; any other refusal fails.
const char* expected_refusal(const std::string& dir) {
    static const std::vector<std::pair<std::regex, const char*>> known = {
        {std::regex(".*_uint8"), "integer tensors"},
        {std::regex(".*_(1d|3d)_.*"), "only 2-D pooling"},
        {std::regex(".*training.*"), "training-mode BatchNorm/Dropout"},
        {std::regex(".*with_argmax.*"), "MaxPool Indices output"},
        {std::regex("test_(edge|reflect)_pad"), "Pad modes other than constant"},
        {std::regex(".*_expanded"), "function bodies use other operators"},
        {std::regex("test_dropout_default_mask.*"), "Dropout mask output"},
        {std::regex("test_identity.*"), "identity-only graph has nothing to compute; non-tensor types"},
    };
    for (const auto& [re, why] : known)
        if (std::regex_match(dir, re)) return why;
    return nullptr;
}

// Inputs the engine needs at import time, or that are weights in real models: bound as constants.
bool parameter_slot(const std::string& op, int slot) {
    if (op == "Conv" || op == "Gemm") return slot >= 1;
    if (op == "BatchNormalization") return slot >= 1;
    if (op == "Pad" || op == "Dropout") return slot >= 1;
    return false;
}

struct PbTensor {
    int type = 0;
    std::vector<int64_t> dims;
    std::vector<float> values;  // converted to float
};

template <typename T>
void raw_to_float(const std::string& raw, std::vector<float>& out) {
    out.resize(raw.size() / sizeof(T));
    for (size_t k = 0; k < out.size(); ++k) {
        T v;
        std::memcpy(&v, raw.data() + k * sizeof(T), sizeof(T));
        out[k] = static_cast<float>(v);
    }
}

// One serialized TensorProto (the test-data format). Integer values are converted to float.
PbTensor read_pb(const std::string& path) {
    onnx::TensorProto p;
    std::ifstream f(path, std::ios::binary);
    REQUIRE_MESSAGE(p.ParseFromIstream(&f), path << ": not a TensorProto");
    PbTensor t;
    t.type = p.data_type();
    t.dims.assign(p.dims().begin(), p.dims().end());
    const std::string& raw = p.raw_data();
    switch (t.type) {
        case onnx::TensorProto::FLOAT:
            if (p.has_raw_data())
                raw_to_float<float>(raw, t.values);
            else
                t.values.assign(p.float_data().begin(), p.float_data().end());
            break;
        case onnx::TensorProto::INT64:
            if (p.has_raw_data())
                raw_to_float<int64_t>(raw, t.values);
            else
                for (auto v : p.int64_data()) t.values.push_back(static_cast<float>(v));
            break;
        case onnx::TensorProto::INT32:
            if (p.has_raw_data())
                raw_to_float<int32_t>(raw, t.values);
            else
                for (auto v : p.int32_data()) t.values.push_back(static_cast<float>(v));
            break;
        case onnx::TensorProto::UINT8:
        case onnx::TensorProto::BOOL:
            if (p.has_raw_data())
                raw_to_float<uint8_t>(raw, t.values);
            else
                for (auto v : p.int32_data()) t.values.push_back(static_cast<float>(v));
            break;
        default:
            break;  // other types stay empty: the importer refuses such models before they are needed
    }
    return t;
}

struct Tally {
    int found = 0, refused = 0, run = 0, passed = 0;
};

struct TestCase {
    std::string dir, fam;
};

std::vector<TestCase> collect() {
    std::vector<TestCase> out;
    if (!fs::exists(kNodeTests)) return out;
    for (const auto& e : fs::directory_iterator(kNodeTests)) {
        const std::string dir = e.path().filename().string();
        const std::string fam = family(dir);
        if (!fam.empty()) out.push_back({dir, fam});
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.dir < b.dir; });
    return out;
}

// Runs one test directory (every data set) on one backend; returns false when import refused it.
bool run_one(const TestCase& tc, engine::Backend& backend, std::string& refusal, bool& all_passed) {
    const fs::path dir = fs::path(kNodeTests) / tc.dir;
    const std::string model_path = (dir / "model.onnx").string();
    onnx::ModelProto mp;
    {
        std::ifstream f(model_path, std::ios::binary);
        REQUIRE_MESSAGE(mp.ParseFromIstream(&f), model_path << ": not an ONNX model");
    }
    const auto& g = mp.graph();
    std::set<std::string> initializers;
    for (const auto& t : g.initializer()) initializers.insert(t.name());
    std::set<std::string> params;
    for (const auto& n : g.node())
        for (int s = 0; s < n.input_size(); ++s)
            if (parameter_slot(n.op_type(), s)) params.insert(n.input(s));
    std::vector<const onnx::ValueInfoProto*> inputs;  // input_k.pb follows these, in order
    for (const auto& vi : g.input())
        if (!initializers.count(vi.name())) inputs.push_back(&vi);

    all_passed = true;
    std::vector<fs::path> sets;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    REQUIRE_MESSAGE(!sets.empty(), tc.dir << ": no test_data_set_*");
    for (const auto& set : sets) {
        std::map<std::string, PbTensor> given;
        std::map<std::string, engine::Tensor> bind;
        for (size_t k = 0; k < inputs.size(); ++k) {
            const auto& vi = *inputs[k];
            const fs::path pb = set / ("input_" + std::to_string(k) + ".pb");
            if (!vi.type().has_tensor_type() || !fs::exists(pb)) continue;  // refused at import
            PbTensor t = read_pb(pb.string());
            if (t.type != onnx::TensorProto::FLOAT || params.count(vi.name()))
                bind[vi.name()] = engine::Tensor(engine::Shape(t.dims), t.values);
            given[vi.name()] = std::move(t);
        }
        engine::Model model;
        try {
            model = engine::import_onnx(model_path, bind);
        } catch (const engine::Error& e) {
            refusal = e.what();
            return false;
        }
        engine::Plan plan(model, backend, 1);
        std::vector<const float*> ptrs;
        for (int i : model.graph.inputs) {
            const auto& node = model.graph.nodes[i];
            auto it = given.find(node.name);
            REQUIRE_MESSAGE(it != given.end(), tc.dir << ": no data for input " << node.name);
            CHECK_MESSAGE(it->second.dims == node.input_dims, tc.dir << ": input " << node.name << " shape differs");
            ptrs.push_back(it->second.values.data());
        }
        plan.run_all(ptrs.data(), 1);
        REQUIRE(model.num_exits() == g.output_size());
        for (int k = 0; k < model.num_exits(); ++k) {
            const PbTensor want = read_pb((set / ("output_" + std::to_string(k) + ".pb")).string());
            REQUIRE(want.type == onnx::TensorProto::FLOAT);
            const engine::TensorView got = plan.exit_logits(k);
            const bool same_shape = got.shape.vec() == want.dims;
            const double err =
                same_shape ? engine::relative_error(got.data, want.values.data(), got.numel()) : INFINITY;
            CHECK_MESSAGE(same_shape, tc.dir << " on " << backend.name() << ": output " << k << " has shape "
                                             << got.shape.str() << ", ONNX expects " << engine::Shape(want.dims).str());
            CHECK_MESSAGE(err <= 1e-4,
                          tc.dir << " on " << backend.name() << ": output " << k << " relative error " << err);
            if (!(err <= 1e-4)) all_passed = false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("ONNX node conformance tests on every backend") {
    const auto cases = collect();
    if (!test::have_material(!cases.empty(), "ONNX conformance",
                             std::string(kNodeTests) + " not found (Debian package libonnx-testdata)"))
        return;
    std::ostringstream report;
    for (const std::string& name : test::backends()) {
        auto backend = engine::make_backend(name);
        std::map<std::string, Tally> table;
        std::vector<std::string> refusals;
        for (const auto& tc : cases) {
            Tally& t = table[tc.fam];
            ++t.found;
            std::string why;
            bool ok = false;
            bool imported = true;
            try {
                imported = run_one(tc, *backend, why, ok);
            } catch (const engine::Error& e) {  // imported, but planning or running threw
                FAIL_CHECK(tc.dir << " on " << name << ": " << e.what());
            }
            if (!imported) {
                ++t.refused;
                const char* expected = expected_refusal(tc.dir);
                CHECK_MESSAGE(expected != nullptr, tc.dir << ": unexpected refusal: " << why);
                refusals.push_back(tc.dir + (expected ? "" : "  (UNEXPECTED)") + "\n    " + why);
                continue;
            }
            ++t.run;
            t.passed += ok;
        }
        Tally total;
        char line[128];
        report << "backend " << name << "\n";
        std::snprintf(line, sizeof line, "%-20s %6s %8s %5s %7s\n", "operator", "found", "refused", "run", "passed");
        report << line;
        for (const auto& [fam, t] : table) {
            std::snprintf(line, sizeof line, "%-20s %6d %8d %5d %7d\n", fam.c_str(), t.found, t.refused, t.run,
                          t.passed);
            report << line;
            total.found += t.found, total.refused += t.refused, total.run += t.run, total.passed += t.passed;
        }
        std::snprintf(line, sizeof line, "%-20s %6d %8d %5d %7d\n", "total", total.found, total.refused, total.run,
                      total.passed);
        report << line << "refused:\n";
        for (const auto& r : refusals) report << "  " << r << "\n";
        report << "\n";
        CHECK(total.run > 0);
    }
    std::printf("%s", report.str().c_str());
    const std::string out = std::string(ENGINE_BIN_DIR) + "/../onnx_conformance.txt";
    std::ofstream(out) << report.str();
}

#else
TEST_CASE("ONNX node conformance tests on every backend") {
    test::skip("ONNX conformance", "built without ONNX import (ENGINE_WITH_ONNX=OFF)");
}
#endif
