#include "cli_common.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "engine/backend.h"
#include "engine/error.h"

namespace engine::cli {

void add_kernels_option(CLI::App& app) {
    app.add_option_function<std::string>(
           "--kernels", [](const std::string& mode) { setenv("ENGINE_KERNELS", mode.c_str(), 1); },
           "native convolution kernels: tuned (the fastest on this CPU, the default) or fixed (the same on every "
           "machine)")
        ->check(CLI::IsMember({"fixed", "tuned"}));
}

int guarded_main(const char* tool, const std::function<int()>& body, int error_status) {
    try {
        return body();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", tool, e.what());
        return error_status;
    }
}

std::string backend_choices() {
    std::string text;
    for (const auto& name : backend_names()) text += (text.empty() ? "" : " | ") + name;
    return text;
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      start_s_(now_seconds()),
      tty_(isatty(STDERR_FILENO)) {}

void Progress::update(int64_t done, const std::string& extra) {
    double t = now_seconds();
    if (!tty_ || t - last_draw_s_ < 0.1) return;
    last_draw_s_ = t;
    draw(done, extra, false);
}

void Progress::finish(const std::string& extra) { draw(total_, extra, true); }

void Progress::draw(int64_t done, const std::string& extra, bool final_line) {
    const double elapsed = now_seconds() - start_s_, frac = double(done) / total_;
    const double rate = elapsed > 0 ? done / elapsed : 0;
    const int eta = rate > 0 ? int((total_ - done) / rate) : 0;
    const int width = 28, filled = int(frac * width);
    std::string bar(filled, '=');
    if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
    std::fprintf(stderr, "%s%s [%s] %3d%% %.0f %s/s %s %d:%02d %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
                 int(frac * 100), rate, unit_.c_str(), final_line ? "in" : "ETA",
                 final_line ? int(elapsed) / 60 : eta / 60, final_line ? int(elapsed) % 60 : eta % 60, extra.c_str(),
                 final_line ? "\n" : "   ");
    std::fflush(stderr);
}

std::vector<float> parse_thresholds(const std::string& text, int num_exits) {
    std::vector<float> q;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        float v = std::strtof(item.c_str(), &end);
        check(end && *end == '\0' && !item.empty() && v >= 0 && v <= 1,
              "thresholds '" + text + "': '" + item + "' is not a probability in [0, 1]");
        q.push_back(v);
    }
    if (q.size() == 1) q.assign(num_exits, q[0]);
    check(int(q.size()) == num_exits, "thresholds '" + text + "': the model has " + std::to_string(num_exits) +
                                          " exits, got " + std::to_string(q.size()) + " values");
    return q;
}

}  // namespace engine::cli
