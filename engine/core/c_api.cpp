// The C API over Model + Plan. Every entry point catches everything: a C caller sees only
// status codes and engine_last_error().
#include "engine/engine.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/plan.h"

struct engine_model {
    engine::Model model;
    std::unique_ptr<engine::Backend> backend;
    std::unique_ptr<engine::Plan> plan;  // declared last: destroyed before what it refers to
    std::vector<float> thresholds;
    std::string error;
};

namespace {

thread_local std::string g_error;

engine_status set_error(engine_model* m, engine_status s, const std::string& message) {
    g_error = message;
    if (m) m->error = message;
    return s;
}

// Runs body, turning any exception into `on_error` plus a message.
template <class F>
engine_status guarded(engine_model* m, engine_status on_error, F&& body) {
    try {
        return body();
    } catch (const engine::Error& e) {
        return set_error(m, on_error, e.what());
    } catch (const std::bad_alloc&) {
        return set_error(m, ENGINE_ERR_RUNTIME, "out of memory");
    } catch (const std::exception& e) {
        return set_error(m, ENGINE_ERR_RUNTIME, std::string("internal error: ") + e.what());
    } catch (...) {
        return set_error(m, ENGINE_ERR_RUNTIME, "internal error: unknown exception");
    }
}

}  // namespace

extern "C" {

engine_status engine_load(const char* path, const char* backend, engine_model** out) {
    if (out) *out = nullptr;
    if (!path || !out) return set_error(nullptr, ENGINE_ERR_ARG, "engine_load: path and out must not be NULL");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec) || ::access(path, R_OK) != 0)
        return set_error(nullptr, ENGINE_ERR_IO, std::string(path) + ": no such file or not readable");
    auto m = std::make_unique<engine_model>();
    engine_status s = guarded(nullptr, ENGINE_ERR_FORMAT, [&] {
        m->model = engine::load_model(path);
        const engine::Graph& g = m->model.graph;
        engine::check(g.inputs.size() == 1, std::string(path) + ": the C API runs single-input models, this has " +
                                                std::to_string(g.inputs.size()) + " inputs");
        const auto& dims = g.nodes[g.inputs[0]].input_dims;
        engine::check(dims.size() == 4 && dims[0] == -1,
                      std::string(path) + ": the C API needs an N x C x H x W input with a batch dimension");
        return ENGINE_OK;
    });
    if (s != ENGINE_OK) return s;
    s = guarded(nullptr, ENGINE_ERR_ARG, [&] {
        // One thread: at batch 1 a single thread is what makes each exit's latency repeatable.
        m->backend = engine::make_backend(backend ? backend : engine::default_backend_name(), 1);
        return ENGINE_OK;
    });
    if (s != ENGINE_OK) return s;
    s = guarded(nullptr, ENGINE_ERR_RUNTIME, [&] {
        m->plan = std::make_unique<engine::Plan>(m->model, *m->backend, 1);
        m->thresholds = m->model.thresholds;
        return ENGINE_OK;
    });
    if (s != ENGINE_OK) return s;
    *out = m.release();
    return ENGINE_OK;
}

engine_status engine_set_thresholds(engine_model* m, const float* q, int n) {
    if (!m || !q) return set_error(m, ENGINE_ERR_ARG, "engine_set_thresholds: model and q must not be NULL");
    const int exits = m->model.num_exits();
    if (n != 1 && n != exits)
        return set_error(m, ENGINE_ERR_ARG,
                         "engine_set_thresholds: " + std::to_string(n) + " thresholds for " + std::to_string(exits) +
                             " exits (give 1 or " + std::to_string(exits) + ")");
    for (int i = 0; i < n; ++i)
        if (std::isnan(q[i])) return set_error(m, ENGINE_ERR_ARG, "engine_set_thresholds: threshold is NaN");
    for (int k = 0; k < exits; ++k) m->thresholds[k] = q[n == 1 ? 0 : k];
    return ENGINE_OK;
}

int engine_num_exits(const engine_model* m) { return m ? m->model.num_exits() : -1; }

engine_status engine_input_shape(const engine_model* m, int64_t dims[4]) {
    if (!m || !dims)
        return set_error(const_cast<engine_model*>(m), ENGINE_ERR_ARG,
                         "engine_input_shape: model and dims must not be NULL");
    const engine::Shape s = m->model.input_shape(1);
    for (int i = 0; i < 4; ++i) dims[i] = s[i];
    return ENGINE_OK;
}

engine_status engine_run(engine_model* m, const float* image, engine_result* out) {
    if (!m || !image || !out) return set_error(m, ENGINE_ERR_ARG, "engine_run: model, image and out must not be NULL");
    return guarded(m, ENGINE_ERR_RUNTIME, [&] {
        engine::SampleResult r;
        m->plan->run_early(image, 1, m->thresholds.data(), &r);
        *out = {r.cls, r.prob, r.exit, r.ns};
        return ENGINE_OK;
    });
}

const char* engine_last_error(const engine_model* m) { return m ? m->error.c_str() : g_error.c_str(); }

const char* engine_status_name(engine_status s) {
    switch (s) {
        case ENGINE_OK:
            return "ENGINE_OK";
        case ENGINE_ERR_IO:
            return "ENGINE_ERR_IO";
        case ENGINE_ERR_FORMAT:
            return "ENGINE_ERR_FORMAT";
        case ENGINE_ERR_ARG:
            return "ENGINE_ERR_ARG";
        case ENGINE_ERR_RUNTIME:
            return "ENGINE_ERR_RUNTIME";
    }
    return "ENGINE_ERR_UNKNOWN";
}

void engine_free(engine_model* m) { delete m; }

}  // extern "C"
