// The C API against the C++ API it wraps, its error paths, and the C example program run as a
// user would run it.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/engine.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "test_util.h"
#include "tiny_model.h"

namespace fs = std::filesystem;

namespace {

struct Fixture {
    fs::path dir;
    std::string model_path;
    engine::Model model;
    Fixture() {
        dir = fs::temp_directory_path() / ("engine_test_c_api." + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        model = test::tiny_model(21, 32, 10);
        model_path = (dir / "tiny.model").string();
        engine::save_model(model, model_path);
    }
    ~Fixture() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    // The C++ answer for one image under thresholds q.
    engine::SampleResult expected(const float* image, const std::vector<float>& q, const char* backend = "ref") {
        auto b = engine::make_backend(backend, 1);
        engine::Plan plan(model, *b, 1);
        engine::SampleResult r;
        plan.run_early(image, 1, q.data(), &r);
        return r;
    }
};

std::string run_command(const std::string& cmd, int* status) {
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    *status = ::pclose(p);
    return out;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "C API: load, shape, thresholds and run agree with the C++ plan") {
    engine_model* m = nullptr;
    REQUIRE(engine_load(model_path.c_str(), "ref", &m) == ENGINE_OK);
    REQUIRE(m != nullptr);
    CHECK(engine_num_exits(m) == 2);
    int64_t dims[4];
    REQUIRE(engine_input_shape(m, dims) == ENGINE_OK);
    CHECK(dims[0] == 1);
    CHECK(dims[1] == 3);
    CHECK(dims[2] == 32);
    CHECK(dims[3] == 32);

    for (uint32_t seed = 1; seed <= 4; ++seed) {
        engine::Tensor image = test::random_tensor({1, 3, 32, 32}, seed, 0, 1);
        engine_result r;
        REQUIRE(engine_run(m, image.data(), &r) == ENGINE_OK);  // the thresholds stored in the file
        engine::SampleResult e = expected(image.data(), model.thresholds);
        CHECK(r.cls == e.cls);
        CHECK(r.exit == e.exit);
        CHECK(r.prob == e.prob);
        CHECK(r.latency_ns > 0);

        // q = 0: the first exit always fires; q > 1: only the last exit can.
        float zero = 0.0f, never[2] = {1.5f, 1.5f};
        REQUIRE(engine_set_thresholds(m, &zero, 1) == ENGINE_OK);
        REQUIRE(engine_run(m, image.data(), &r) == ENGINE_OK);
        CHECK(r.exit == 0);
        CHECK(r.cls == expected(image.data(), {0.0f, 0.0f}).cls);
        REQUIRE(engine_set_thresholds(m, never, 2) == ENGINE_OK);
        REQUIRE(engine_run(m, image.data(), &r) == ENGINE_OK);
        CHECK(r.exit == 1);
        CHECK(r.cls == expected(image.data(), {1.5f, 1.5f}).cls);
        CHECK(r.prob > 0.0f);
        CHECK(r.prob <= 1.0f);
        REQUIRE(engine_set_thresholds(m, model.thresholds.data(), 2) == ENGINE_OK);
    }
    CHECK(std::string(engine_last_error(m)).empty());
    engine_free(m);

    // The default backend gives the same decisions as the same backend through C++.
    REQUIRE(engine_load(model_path.c_str(), nullptr, &m) == ENGINE_OK);
    engine::Tensor image = test::random_tensor({1, 3, 32, 32}, 9, 0, 1);
    engine_result r;
    REQUIRE(engine_run(m, image.data(), &r) == ENGINE_OK);
    engine::SampleResult e = expected(image.data(), model.thresholds, engine::default_backend_name().c_str());
    CHECK(r.cls == e.cls);
    CHECK(r.exit == e.exit);
    CHECK(r.prob == doctest::Approx(e.prob).epsilon(1e-6));
    engine_free(m);
}

TEST_CASE_FIXTURE(Fixture, "C API: error paths return a status and a one-line message") {
    engine_model* m = reinterpret_cast<engine_model*>(0x1);  // must be reset to NULL on failure
    const std::string missing = (dir / "missing.model").string();
    CHECK(engine_load(missing.c_str(), nullptr, &m) == ENGINE_ERR_IO);
    CHECK(m == nullptr);
    CHECK(std::string(engine_last_error(nullptr)).find(missing) != std::string::npos);

    CHECK(engine_load(nullptr, nullptr, &m) == ENGINE_ERR_ARG);
    CHECK(engine_load(model_path.c_str(), nullptr, nullptr) == ENGINE_ERR_ARG);
    CHECK(engine_load(dir.c_str(), nullptr, &m) == ENGINE_ERR_IO);  // a directory

    const std::string text = (dir / "text.model").string();
    std::ofstream(text) << "not a model";
    CHECK(engine_load(text.c_str(), nullptr, &m) == ENGINE_ERR_FORMAT);
    CHECK(m == nullptr);
    std::string msg = engine_last_error(nullptr);
    CHECK(msg.rfind(text + ": ", 0) == 0);
    CHECK(msg.find('\n') == std::string::npos);

    CHECK(engine_load(model_path.c_str(), "no-such-backend", &m) == ENGINE_ERR_ARG);
    CHECK(std::string(engine_last_error(nullptr)).find("no-such-backend") != std::string::npos);
    CHECK(m == nullptr);

    REQUIRE(engine_load(model_path.c_str(), "ref", &m) == ENGINE_OK);
    float q[3] = {0.5f, 0.5f, 0.5f};
    CHECK(engine_set_thresholds(m, q, 3) == ENGINE_ERR_ARG);
    CHECK(std::string(engine_last_error(m)).find("3 thresholds for 2 exits") != std::string::npos);
    CHECK(engine_set_thresholds(m, q, 0) == ENGINE_ERR_ARG);
    CHECK(engine_set_thresholds(m, nullptr, 1) == ENGINE_ERR_ARG);
    float nan = NAN;
    CHECK(engine_set_thresholds(m, &nan, 1) == ENGINE_ERR_ARG);
    CHECK(engine_set_thresholds(nullptr, q, 2) == ENGINE_ERR_ARG);

    engine::Tensor image({1, 3, 32, 32});
    engine_result r;
    CHECK(engine_run(m, nullptr, &r) == ENGINE_ERR_ARG);
    CHECK(engine_run(m, image.data(), nullptr) == ENGINE_ERR_ARG);
    CHECK(engine_run(nullptr, image.data(), &r) == ENGINE_ERR_ARG);
    CHECK(engine_input_shape(m, nullptr) == ENGINE_ERR_ARG);
    int64_t dims[4];
    CHECK(engine_input_shape(nullptr, dims) == ENGINE_ERR_ARG);
    CHECK(engine_num_exits(nullptr) == -1);
    // A failed call does not break the model.
    CHECK(engine_run(m, image.data(), &r) == ENGINE_OK);
    engine_free(m);
    engine_free(nullptr);

    CHECK(std::string(engine_status_name(ENGINE_ERR_FORMAT)) == "ENGINE_ERR_FORMAT");
}

TEST_CASE_FIXTURE(Fixture, "C example: c_api_demo prints what the C++ plan computes") {
    const std::string demo = std::string(ENGINE_BIN_DIR) + "/c_api_demo";
    REQUIRE_MESSAGE(fs::exists(demo),
                    demo << " not built: the top-level CMakeLists.txt needs add_subdirectory(examples)");

    // A CIFAR-10-format file of three records: label byte, then 3072 pixel bytes (RGB planes).
    const std::string cifar = (dir / "three.bin").string();
    std::vector<engine::Tensor> images;
    std::vector<int> labels = {3, 7, 0};
    {
        std::ofstream out(cifar, std::ios::binary);
        std::mt19937 rng(5);
        for (int label : labels) {
            engine::Tensor img({1, 3, 32, 32});
            out.put(char(label));
            for (auto& v : img.values()) {
                unsigned char byte = static_cast<unsigned char>(rng() & 255);
                out.put(char(byte));
                v = byte / 255.0f;
            }
            images.push_back(img);
        }
    }
    int status = 0;
    std::string out = run_command(demo + " " + model_path + " " + cifar + " 10 0.3 2>&1", &status);
    INFO(out);
    REQUIRE(status == 0);
    std::istringstream lines(out);
    std::string line;
    std::getline(lines, line);
    CHECK(line == "model: 2 exits, input 1x3x32x32");
    const std::vector<float> q = {0.3f, 0.3f};
    int seen = 0;
    while (std::getline(lines, line)) {
        int i, label, cls, exit;
        float prob;
        long long ns;
        REQUIRE(std::sscanf(line.c_str(), "image %d label %d class %d prob %f exit %d latency_ns %lld", &i, &label,
                            &cls, &prob, &exit, &ns) == 6);
        REQUIRE(i == seen);
        engine::SampleResult e = expected(images[i].data(), q, engine::default_backend_name().c_str());
        CHECK(label == labels[i]);
        CHECK(cls == e.cls);
        CHECK(exit == e.exit);
        CHECK(prob == doctest::Approx(e.prob).epsilon(1e-5));
        CHECK(ns > 0);
        ++seen;
    }
    CHECK(seen == 3);  // stops at the end of the file, not at COUNT

    // Without an image file: one all-zero image.
    out = run_command(demo + " " + model_path + " 2>&1", &status);
    REQUIRE(status == 0);
    engine::Tensor zero({1, 3, 32, 32});
    engine::SampleResult e = expected(zero.data(), model.thresholds, engine::default_backend_name().c_str());
    std::ostringstream want;
    want << "image 0 label -1 class " << e.cls << " prob ";
    CHECK(out.find(want.str()) != std::string::npos);

    // A bad model path: non-zero exit status and the file named on stderr.
    out = run_command(demo + " " + (dir / "nope.model").string() + " 2>&1", &status);
    CHECK(status != 0);
    CHECK(out.find("nope.model") != std::string::npos);
}
