#include "engine/latency.h"

#include <algorithm>
#include <cmath>

namespace engine {

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

}  // namespace engine
