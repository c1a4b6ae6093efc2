// Summary statistics of latency samples.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/api.h"

namespace engine {

struct ENGINE_API LatencyStats {
    double median_ms = 0, p99_ms = 0, mean_ms = 0, stddev_ms = 0;
    int64_t count = 0;
};

// Median, 99th percentile, mean and standard deviation, in milliseconds, of nanosecond samples.
ENGINE_API LatencyStats latency_stats(std::vector<int64_t> ns);

}  // namespace engine
