#include "serve.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "cli_common.h"
#include "engine/error.h"
#include "engine/plan.h"

namespace engine::cli {

void parse_loopback_address(const std::string& address, std::string& host, int& port) {
    auto colon = address.rfind(':');
    check(colon != std::string::npos, "address '" + address + "': expected host:port");
    host = address.substr(0, colon);
    char* end = nullptr;
    long p = std::strtol(address.c_str() + colon + 1, &end, 10);
    check(end && *end == '\0' && p > 0 && p < 65536, "address '" + address + "': invalid port");
    port = int(p);
    check(host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" || host == "[::1]",
          "address '" + address + "': only loopback addresses are served");
    if (host == "localhost") host = "127.0.0.1";
}

int serve_model(const std::string& model_path, const std::string& listen, const std::string& thresholds_text,
                const std::string& backend_name, int threads) {
    std::string host;
    int port = 0;
    parse_loopback_address(listen, host, port);
    Model model = load_model(model_path);
    auto thresholds = thresholds_text.empty() ? model.thresholds : parse_thresholds(thresholds_text, model.num_exits());
    auto backend = make_backend(backend_name, threads);
    Plan plan(model, *backend, 1);
    const Shape input_shape = model.input_shape(1);
    Tensor image(input_shape);
    std::mutex one_at_a_time;  // one plan, one request at a time: latency must not depend on load

    httplib::Server server;
    server.new_task_queue = [] { return new httplib::ThreadPool(1); };
    server.set_tcp_nodelay(true);  // else Nagle and delayed ACKs add ~40 ms to every answer
    server.Get("/info", [&](const httplib::Request&, httplib::Response& res) {
        nlohmann::json j{{"input", input_shape.vec()}, {"exits", model.num_exits()}};
        res.set_content(j.dump(), "application/json");
    });
    const size_t image_bytes = size_t(image.numel()) * sizeof(float);
    const size_t max_bytes = image_bytes * kMaxRequestImages;
    server.Post("/predict", [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(one_at_a_time);
        const size_t bytes = req.body.size();
        if (bytes == 0 || bytes % image_bytes != 0 || bytes > max_bytes) {
            res.status = 400;
            res.set_content("body must be N * " + std::to_string(image.numel()) +
                                " float32 values, 1 <= N <= " + std::to_string(kMaxRequestImages),
                            "text/plain");
            return;
        }
        for (size_t at = 0; at < bytes; at += sizeof(float)) {
            float v;
            std::memcpy(&v, req.body.data() + at, sizeof v);
            if (!std::isfinite(v)) {
                res.status = 400;
                res.set_content("input contains NaN or infinite values", "text/plain");
                return;
            }
        }
        nlohmann::json classes = nlohmann::json::array();
        SampleResult first;
        for (size_t n = 0; n < bytes / image_bytes; ++n) {
            std::memcpy(image.data(), req.body.data() + n * image_bytes, image_bytes);
            SampleResult r;
            plan.run_early(image.data(), 1, thresholds.data(), &r);
            if (n == 0) first = r;
            classes.push_back(r.cls);
        }
        res.set_content(nlohmann::json{{"class", first.cls}, {"probability", first.prob}, {"classes", classes}}.dump(),
                        "application/json");
    });
    server.Post("/echo", [&](const httplib::Request& req, httplib::Response& res) {
        if (req.body.size() > max_bytes) {
            res.status = 400;
            res.set_content("body larger than " + std::to_string(kMaxRequestImages) + " images", "text/plain");
            return;
        }
        res.set_content(nlohmann::json{{"bytes", req.body.size()}}.dump(), "application/json");
    });
    check(server.bind_to_port(host.c_str(), port), "address '" + listen + "': cannot listen (port in use?)");
    std::fprintf(stderr, "serving %s on http://%s:%d (POST /predict, POST /echo, GET /info)\n", model_path.c_str(),
                 host.c_str(), port);
    server.listen_after_bind();
    return 0;
}

}  // namespace engine::cli
