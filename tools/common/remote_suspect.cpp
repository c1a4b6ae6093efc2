#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>

#include "engine/error.h"
#include "remote_suspect.h"

namespace fp {

namespace {

int64_t elapsed_ns(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
}

class RemoteSuspect : public Suspect {
public:
    explicit RemoteSuspect(const std::string& url) : url_(url), client_(url) {
        engine::check(client_.is_valid(), url + ": not a valid http:// URL");
        client_.set_keep_alive(true);
        client_.set_tcp_nodelay(true);
        client_.set_read_timeout(30, 0);
        auto res = client_.Get("/info");
        engine::check(bool(res),
                      url + ": no answer (" + httplib::to_string(res.error()) + "); is engine_run serve running?");
        engine::check(res->status == 200, url + ": /info answered HTTP " + std::to_string(res->status));
        try {
            auto j = nlohmann::json::parse(res->body);
            shape_ = j.at("input").get<std::vector<int64_t>>();
        } catch (const std::exception& e) {
            engine::fail(url + ": /info is not the engine_run serve protocol (" + e.what() + ")");
        }
        numel_ = 1;
        for (auto d : shape_) numel_ *= d;
    }

    Answer query(const float* image, int copies) override {
        const std::string one(reinterpret_cast<const char*>(image), size_t(numel_) * sizeof(float));
        std::string body;
        body.reserve(one.size() * copies);
        for (int c = 0; c < copies; ++c) body += one;
        const auto start = std::chrono::steady_clock::now();
        auto res = client_.Post("/predict", body, "application/octet-stream");
        const int64_t ns = elapsed_ns(start);
        engine::check(bool(res), url_ + ": request failed (" + httplib::to_string(res.error()) + ")");
        engine::check(res->status == 200,
                      url_ + ": /predict answered HTTP " + std::to_string(res->status) + ": " + res->body);
        Answer a;
        a.cls = nlohmann::json::parse(res->body).value("class", -1);
        a.ns = ns;
        return a;
    }

    // One image's request: GET /info, as before batches (its 12 kB take microseconds on loopback).
    // A batch: POST /echo with a body of the same size, which moves the bytes and runs nothing.
    int64_t null_query_ns(int copies) override {
        std::string body;
        if (copies > 1) body.assign(size_t(numel_) * sizeof(float) * copies, '\0');
        const auto start = std::chrono::steady_clock::now();
        auto res = copies > 1 ? client_.Post("/echo", body, "application/octet-stream") : client_.Get("/info");
        const int64_t ns = elapsed_ns(start);
        engine::check(bool(res) && res->status == 200,
                      url_ + (copies > 1 ? ": /echo failed (a server older than batch requests?)" : ": /info failed"));
        return ns;
    }

    bool reveals_exit() const override { return false; }
    std::string describe() const override { return url_ + " (remote, time only)"; }
    std::vector<int64_t> input_shape() const override { return shape_; }

private:
    std::string url_;
    httplib::Client client_;
    std::vector<int64_t> shape_;
    int64_t numel_ = 0;
};

}  // namespace

std::unique_ptr<Suspect> make_remote_suspect(const std::string& url) { return std::make_unique<RemoteSuspect>(url); }

}  // namespace fp
