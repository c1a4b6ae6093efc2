#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/train/augment.h"

namespace engine::train {

namespace {

uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

std::mt19937_64 epoch_rng(uint64_t seed, int64_t epoch) {
    return std::mt19937_64(splitmix64(splitmix64(seed) ^ uint64_t(epoch) * 0xD1B54A32D192ED03ull));
}

std::vector<int> shuffled_order(int n, std::mt19937_64& rng) {
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    for (int i = n - 1; i > 0; --i) std::swap(order[i], order[rng() % uint64_t(i + 1)]);
    return order;
}

float uniform01(std::mt19937_64& rng) { return float(rng() >> 40) * (1.0f / 16777216.0f); }

void make_batch(const Dataset& data, const int* order, int n, const AugmentConfig& config, std::mt19937_64& rng,
                float* out, int* labels_out) {
    const Shape& s = data.images.shape();
    check(s.rank == 4, "training data: images must be N x C x H x W, got " + s.str());
    const int64_t C = s[1], H = s[2], W = s[3], plane = H * W, per = C * plane;
    for (int r = 0; r < n; ++r) {
        const int idx = order[r];
        check(idx >= 0 && idx < data.size(), "training data: sample index out of range");
        labels_out[r] = data.labels[idx];
        const float* src = data.images.data() + int64_t(idx) * per;
        float* dst = out + int64_t(r) * per;
        if (!config.enabled) {
            std::memcpy(dst, src, sizeof(float) * per);
            continue;
        }
        const int span = 2 * config.pad + 1;
        const int64_t dy = int64_t(rng() % uint64_t(span)) - config.pad;  // crop offset in the padded image
        const int64_t dx = int64_t(rng() % uint64_t(span)) - config.pad;
        const bool flip = config.flip && (rng() & 1);
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < H; ++y) {
                float* row = dst + c * plane + y * W;
                const int64_t sy = y + dy;
                if (sy < 0 || sy >= H) {
                    std::fill(row, row + W, 0.0f);
                    continue;
                }
                const float* srow = src + c * plane + sy * W;
                for (int64_t x = 0; x < W; ++x) {
                    const int64_t sx = (flip ? W - 1 - x : x) + dx;
                    row[x] = sx >= 0 && sx < W ? srow[sx] : 0.0f;
                }
            }
    }
}

}  // namespace engine::train
