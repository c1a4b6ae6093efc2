#include "cli_common.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "engine/error.h"

namespace engine::cli {

namespace fs = std::filesystem;

int guarded_main(const char* tool, const std::function<int()>& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", tool, e.what());
        return 1;
    }
}

Dataset load_dataset_dir(const std::string& dir, bool train, int limit) {
    check(fs::exists(dir), dir + ": no such file or directory");
    if (fs::is_regular_file(dir)) return load_cifar(dir, train, 10, limit);
    auto has = [&](const char* name) { return fs::exists(fs::path(dir) / name); };
    if (has("test_batch.bin") || has("data_batch_1.bin") || has("cifar-10-batches-bin")) return load_cifar(dir, train, 10, limit);
    if (has("test.bin") || has("train.bin") || has("cifar-100-binary")) return load_cifar(dir, train, 100, limit);
    if (has("t10k-images-idx3-ubyte") || has("t10k-images-idx3-ubyte.gz")) return load_fashion_mnist(dir, train, limit);
    if (has("wnids.txt") || has("tiny-imagenet-200")) return load_tiny_imagenet(dir, train, limit);
    fail(dir + ": no CIFAR-10, CIFAR-100, IDX (Fashion-MNIST) or Tiny-ImageNet-200 files found");
}

LatencyStats latency_stats(std::vector<int64_t> ns) {
    LatencyStats s;
    s.count = int64_t(ns.size());
    if (ns.empty()) return s;
    std::sort(ns.begin(), ns.end());
    auto at = [&](double q) { return ns[std::min(ns.size() - 1, size_t(std::ceil(q * ns.size())) - (q > 0 ? 1 : 0))]; };
    s.median_ms = (ns.size() % 2 ? ns[ns.size() / 2] : 0.5 * (ns[ns.size() / 2 - 1] + ns[ns.size() / 2])) * 1e-6;
    s.p99_ms = at(0.99) * 1e-6;
    double sum = 0, sum2 = 0;
    for (auto v : ns) sum += v * 1e-6, sum2 += (v * 1e-6) * (v * 1e-6);
    s.mean_ms = sum / ns.size();
    s.stddev_ms = std::sqrt(std::max(0.0, sum2 / ns.size() - s.mean_ms * s.mean_ms));
    return s;
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(total, 1)), start_s_(now_seconds()),
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
                 int(frac * 100), rate, unit_.c_str(), final_line ? "in" : "ETA", final_line ? int(elapsed) / 60 : eta / 60,
                 final_line ? int(elapsed) % 60 : eta % 60, extra.c_str(), final_line ? "\n" : "   ");
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
