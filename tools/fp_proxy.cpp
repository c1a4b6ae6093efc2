// fp_proxy: a loopback HTTP proxy in front of `engine_run serve` that delays every answer by a
// fixed time plus random jitter, to test fp_check over a network slower and noisier than loopback.
// It forwards GET /info and POST /predict unchanged, one request at a time (as the server answers
// them), and adds the delay after the upstream answer. Bounded: it exits after --max-requests
// requests or --max-seconds seconds, whichever comes first. Loopback only, both sides.
#include <sys/prctl.h>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "cli_common.h"
#include "engine/error.h"
#include "serve.h"

using namespace engine;

int main(int argc, char** argv) {
    return cli::guarded_main("fp_proxy", [&]() -> int {
        CLI::App app{"fp_proxy: forward engine_run serve's loopback port, adding delay and jitter to every answer"};
        std::string listen = "127.0.0.1:8766", upstream, jitter_kind = "uniform";
        double delay_ms = 0, jitter_ms = 0, max_seconds = 600;
        int64_t max_requests = 200000;
        uint64_t seed = 1;
        app.add_option("--listen", listen, "host:port to listen on (loopback only)");
        app.add_option("--upstream", upstream, "host:port of engine_run serve (loopback only)")->required();
        app.add_option("--delay-ms", delay_ms, "fixed delay added to every answer")->check(CLI::Range(0.0, 1000.0));
        app.add_option("--jitter-ms", jitter_ms, "random delay on top: uniform on [0, J] or exponential of mean J")
            ->check(CLI::Range(0.0, 1000.0));
        app.add_option("--jitter", jitter_kind, "uniform | exponential")
            ->check(CLI::IsMember({"uniform", "exponential"}));
        app.add_option("--seed", seed);
        app.add_option("--max-requests", max_requests, "exit after this many requests")
            ->check(CLI::Range(1, 100000000));
        app.add_option("--max-seconds", max_seconds, "exit after this many seconds")->check(CLI::Range(1.0, 86400.0));
        CLI11_PARSE(app, argc, argv);
        std::string host, up_host;
        int port = 0, up_port = 0;
        cli::parse_loopback_address(listen, host, port);
        if (upstream.rfind("http://", 0) == 0) upstream = upstream.substr(7);
        cli::parse_loopback_address(upstream, up_host, up_port);

        httplib::Client client(up_host, up_port);
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        client.set_read_timeout(30, 0);
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> uniform(0.0, jitter_ms);
        std::exponential_distribution<double> exponential(jitter_ms > 0 ? 1.0 / jitter_ms : 1.0);
        auto extra_ms = [&] {
            if (jitter_ms <= 0) return delay_ms;
            return delay_ms + (jitter_kind == "uniform" ? uniform(rng) : exponential(rng));
        };
        std::atomic<int64_t> served{0};
        auto finish = [&](const httplib::Result& res, httplib::Response& out) {
            if (!res) {
                out.status = 502;
                out.set_content(
                    "fp_proxy: upstream " + upstream + " did not answer (" + httplib::to_string(res.error()) + ")",
                    "text/plain");
            } else {
                out.status = res->status;
                out.set_content(res->body, res->get_header_value("Content-Type"));
            }
            std::this_thread::sleep_for(std::chrono::nanoseconds(int64_t(extra_ms() * 1e6)));
            ++served;
        };

        // Linux wakes a sleeping thread up to 50 us late by default (timer slack), which would add
        // noise of its own to the jitter asked for; the server's threads inherit this setting.
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        httplib::Server server;
        server.new_task_queue = [] { return new httplib::ThreadPool(1); };
        server.set_tcp_nodelay(true);
        server.Get("/info", [&](const httplib::Request&, httplib::Response& out) { finish(client.Get("/info"), out); });
        server.Post("/predict", [&](const httplib::Request& req, httplib::Response& out) {
            finish(client.Post("/predict", req.body, "application/octet-stream"), out);
        });
        server.Post("/echo", [&](const httplib::Request& req, httplib::Response& out) {
            finish(client.Post("/echo", req.body, "application/octet-stream"), out);
        });
        check(server.bind_to_port(host.c_str(), port), "address '" + listen + "': cannot listen (port in use?)");
        std::atomic<bool> done{false};
        std::thread watchdog([&] {  // the bounds: stop() from outside the handlers
            const auto start = std::chrono::steady_clock::now();
            while (!done && served < max_requests &&
                   std::chrono::steady_clock::now() - start < std::chrono::duration<double>(max_seconds))
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            server.stop();
        });
        std::fprintf(stderr, "fp_proxy: http://%s:%d -> http://%s:%d, delay %.3f ms + %s jitter %.3f ms\n",
                     host.c_str(), port, up_host.c_str(), up_port, delay_ms, jitter_kind.c_str(), jitter_ms);
        server.listen_after_bind();
        done = true;
        watchdog.join();
        std::fprintf(stderr, "fp_proxy: stopped after %lld requests\n", (long long)served.load());
        return 0;
    });
}
