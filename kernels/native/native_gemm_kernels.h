// The packed GEMM's AVX-512 micro-kernels (native_gemm_avx512.cpp), internal to native_gemm.cpp.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace engine::native {

// Asks for the lines of a tile's `rows` rows of `width` floats before its sums are computed, so that
// fetching C (written fresh: a line not in cache is read before it is written) overlaps the
// multiply-adds instead of stalling the tile's stores. Where a 1x1 convolution's output left the
// caches (batch 128), 64 x 32 x 1024 products ran at 87 -> 108 GFLOP/s and 128 x 64 x 256 at 114 -> 136
// (one thread, interleaved).
inline void prefetch_tile(const float* C, int64_t ldc, int rows, int width) {
    for (int r = 0; r < rows; ++r) {
        const char* row = reinterpret_cast<const char*>(C + r * ldc);
        _mm_prefetch(row, _MM_HINT_T0);
        _mm_prefetch(row + 4 * (width - 1), _MM_HINT_T0);  // the row's last line, where it spans two or three
        if (width > 16) _mm_prefetch(row + 64, _MM_HINT_T0);
    }
}

// How a micro-kernel stores its tile's sums: added to C, or (from_bias) added to the tile's rows'
// bias (zero where null) over whatever C held; then ReLU where asked.
struct TileStore {
    bool from_bias = false;
    const float* bias = nullptr;  // the tile's first row's
    bool relu = false;
};

// C[0..rows, 0..32) += Ap Bp over kc steps: Ap a packed A panel of 6 rows (zero past `rows`), Bp0
// and Bp1 two adjacent packed B panels of 16 columns; only C's first `rows` rows are written.
void micro_kernel_6x32_avx512(int64_t kc, const float* Ap, const float* Bp0, const float* Bp1, float* C, int64_t ldc,
                              int rows, TileStore store);

// C[0..12, 0..16) += [Ap0; Ap1] Bp: two adjacent packed A panels of 6 rows by one packed B panel.
void micro_kernel_12x16_avx512(int64_t kc, const float* Ap0, const float* Ap1, const float* Bp, float* C, int64_t ldc,
                               TileStore store);

// narrow_panel_rows (native_gemm_narrow_impl.h) on AVX-512: one panel of 48 rows packed by
// pack_a_rows, N <= 4 columns of B (ldb apart in k).
void narrow_panel_48_avx512(int N, int64_t K, const float* Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                            int64_t rows);

}  // namespace engine::native
