#include "cpu_pad.h"

#include <immintrin.h>

#include <algorithm>

namespace engine::cpu {

void pad_plane(const float* x, int64_t H, int64_t W, float* out) {
    const int64_t Wp = W + 2;
    std::fill(out, out + Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h) {
        float* row = out + (h + 1) * Wp;
        row[0] = 0.0f;
        std::copy(x + h * W, x + (h + 1) * W, row + 1);
        row[W + 1] = 0.0f;
    }
    std::fill(out + (H + 1) * Wp, out + (H + 2) * Wp, 0.0f);
}

void pad_plane_deinterleaved(const float* x, int64_t H, int64_t W, float* out) {
    const int64_t Wp = W + 2, half = Wp / 2;
    std::fill(out, out + Wp, 0.0f);
    for (int64_t h = 0; h < H; ++h) {
        float* even = out + (h + 1) * Wp;  // padded columns 0, 2, ..., W: input columns -1, 1, ..., W - 1
        float* odd = even + half;          // padded columns 1, 3, ..., W + 1: input columns 0, 2, ..., W
        const float* in = x + h * W;
        even[0] = 0.0f;
        int64_t j = 0;
        for (; j + 16 <= W; j += 16) {
            const __m256 a = _mm256_loadu_ps(in + j), b = _mm256_loadu_ps(in + j + 8);
            // shuffle_ps pairs within 128-bit lanes; permute4x64 puts the lanes in order.
            const __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            constexpr int kOrder = _MM_SHUFFLE(3, 1, 2, 0);
            _mm256_storeu_ps(odd + j / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), kOrder)));
            _mm256_storeu_ps(even + j / 2 + 1, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), kOrder)));
        }
        for (; j < W; j += 2) {
            odd[j / 2] = in[j];
            even[j / 2 + 1] = in[j + 1];
        }
        odd[half - 1] = 0.0f;
    }
    std::fill(out + (H + 1) * Wp, out + (H + 2) * Wp, 0.0f);
}

}  // namespace engine::cpu
