// Packed single-precision GEMM in the BLIS style: panels of A (6 rows) and B (16 columns) are
// packed into contiguous buffers so that a 6x16 register-blocked micro-kernel (12 accumulators,
// two 8-wide B loads and six broadcasts per step) streams both from L1/L2; on AVX-512 a 6x32 kernel
// takes two B panels at once (native_gemm_avx512.cpp), with the same values. Operands are given by
// (row stride, column stride), so transposed operands cost only a different packing order.
#include "native_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "native_gemm_kernels.h"
#include "native_gemm_narrow_impl.h"
#include "native_isa.h"

namespace engine::native {

namespace {

constexpr int64_t kMR = kPackedRowStep, kNR = 16;
constexpr int64_t kKC = 256;   // depth of one packed panel: A and B slivers stay in L1
constexpr int64_t kMC = 72;    // rows of A per packed block (L2)
constexpr int64_t kNC = 2048;  // columns of B per packed block
// Floats of packed A the AVX2 micro-kernel asks for ahead, each step: a 1x1 convolution on a 4x4 plane
// streams its weights once (MobileNet's 512-channel layers: 1 MB), from memory at batch 1. On a Zen 3
// EPYC, 512 x 512 x 16 with 64 copies cycled: 119-146 against 150-167 us (median, 5 interleaved pairs).
constexpr int64_t kAheadA = 1024;

struct Operand {
    const float* p;
    int64_t rs, cs;  // element (r, c) is p[r * rs + c * cs]
    float at(int64_t r, int64_t c) const { return p[r * rs + c * cs]; }
};

// A block of mc x kc into row panels of kMR: panel i holds, for each k, kMR consecutive rows.
void pack_a(const Operand& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* out) {
    for (int64_t i = 0; i < mc; i += kMR) {
        const int64_t rows = std::min(kMR, mc - i);
        for (int64_t k = 0; k < kc; ++k) {
            for (int64_t r = 0; r < rows; ++r) out[r] = A.at(i0 + i + r, k0 + k);
            for (int64_t r = rows; r < kMR; ++r) out[r] = 0.0f;
            out += kMR;
        }
    }
}

// A block of kc x nc into column panels of kNR: panel j holds, for each k, kNR consecutive columns.
void pack_b(const Operand& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* out) {
    for (int64_t j = 0; j < nc; j += kNR) {
        const int64_t cols = std::min(kNR, nc - j);
        for (int64_t k = 0; k < kc; ++k) {
            const float* src = B.p + (k0 + k) * B.rs + (j0 + j) * B.cs;
            if (B.cs == 1 && cols == kNR) {
                std::memcpy(out, src, sizeof(float) * kNR);
            } else {
                for (int64_t c = 0; c < cols; ++c) out[c] = src[c * B.cs];
                for (int64_t c = cols; c < kNR; ++c) out[c] = 0.0f;
            }
            out += kNR;
        }
    }
}

// C[0..6, 0..16] += Ap * Bp over kc steps (or as `store` says); rows/cols < 6/16 at the edges go
// through a buffer.
void micro_kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int64_t rows, int64_t cols,
                  TileStore store = {}) {
    prefetch_tile(C, ldc, int(rows), int(cols));
    // Every loop over r is unrolled, or GCC keeps the accumulators on the stack and stores all 12
    // on every step, which halves the kernel's speed.
    __m256 c[kMR][2];
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        _mm_prefetch(reinterpret_cast<const char*>(Ap + kAheadA), _MM_HINT_T0);
        const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < kMR; ++r) {
            const __m256 a = _mm256_broadcast_ss(Ap + r);
            c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
        }
        Ap += kMR;
        Bp += kNR;
    }
    if (rows == kMR && cols == kNR) {
        const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
        for (int r = 0; r < kMR; ++r) {
            float* cr = C + r * ldc;
            const __m256 bias = store.bias ? _mm256_set1_ps(store.bias[r]) : zero;
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                __m256 v = _mm256_add_ps(store.from_bias ? bias : _mm256_loadu_ps(cr + 8 * h), c[r][h]);
                if (store.relu) v = _mm256_max_ps(v, zero);
                _mm256_storeu_ps(cr + 8 * h, v);
            }
        }
        return;
    }
    alignas(32) float tile[kMR][kNR];
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
        _mm256_store_ps(tile[r], c[r][0]);
        _mm256_store_ps(tile[r] + 8, c[r][1]);
    }
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) {
            float& out = C[r * ldc + j];
            const float v = (store.from_bias ? (store.bias ? store.bias[r] : 0.0f) : out) + tile[r][j];
            out = store.relu && !(v > 0.0f) ? 0.0f : v;
        }
}

// Whether the products run their AVX-512 kernels: decided once per process, from the CPU (and
// ENGINE_NATIVE_ISA), for the packed and the narrow GEMM alike.
bool on_avx512() {
    static const bool avx512 = isa_of_this_cpu() == Isa::avx512;
    return avx512;
}

// Packing buffers, one set per thread, allocated on the thread's first product and never freed
// (they live as long as the thread).
struct PackBuffers {
    alignas(64) float a[kMC * kKC];
    alignas(64) float b[kKC * kNC];
};

PackBuffers& thread_buffers() {
    static thread_local PackBuffers* buf = new PackBuffers;
    return *buf;
}

// Offset of block (i0, k0) in a fully packed A: the k0 block rows of all rows (padded to kMR)
// come first, and within a k block the row blocks follow in order (kMC is a multiple of kMR).
int64_t packed_offset(int64_t M, int64_t i0, int64_t k0, int64_t kc) {
    return (M + kMR - 1) / kMR * kMR * k0 + i0 * kc;
}

// Rows [row_begin, row_end) of C += A B (row_begin a multiple of kMR). A is packed block by block
// here, or, where packed_a is given, was packed whole by pack_a_whole (and A is not read).
void gemm(int64_t M, int64_t N, int64_t K, const Operand& A, const float* packed_a, const Operand& B, float* C,
          int64_t ldc, int64_t row_begin = 0, int64_t row_end = -1, GemmStore store = {}) {
    if (row_end < 0) row_end = M;
    if (M <= 0 || N <= 0 || K <= 0) return;
    const bool avx512 = on_avx512();
    PackBuffers& buf = thread_buffers();
    for (int64_t j0 = 0; j0 < N; j0 += kNC) {
        const int64_t nc = std::min(kNC, N - j0);
        for (int64_t k0 = 0; k0 < K; k0 += kKC) {
            const int64_t kc = std::min(kKC, K - k0);
            // A B of exactly one panel's width, rows contiguous and aligned (a 1x1 convolution on a
            // 4x4 plane), is already in packed order: the kernel reads it in place.
            const float* b = B.p + k0 * B.rs + j0 * B.cs;
            const bool packed = nc == kNR && B.cs == 1 && B.rs == kNR && reinterpret_cast<uintptr_t>(b) % 32 == 0;
            if (!packed) {
                pack_b(B, k0, kc, j0, nc, buf.b);
                b = buf.b;
            }
            // `store` applies where this block starts C (the first depth block) or ends it (the last).
            const bool first = store.set && k0 == 0, last = store.set && k0 + kc == K;
            for (int64_t i0 = row_begin; i0 < row_end; i0 += kMC) {
                const int64_t mc = std::min(kMC, row_end - i0);
                const float* a = buf.a;
                if (packed_a)
                    a = packed_a + packed_offset(M, i0, k0, kc);
                else
                    pack_a(A, i0, mc, k0, kc, buf.a);
                for (int64_t j = 0; j < nc;) {
                    // Two B panels at once on AVX-512 (full column pairs; the last odd panel takes the AVX2 kernel).
                    const bool wide = avx512 && j + 2 * kNR <= nc;
                    const bool tall = avx512 && !wide && nc - j == kNR;  // one panel: two A panels at once
                    for (int64_t i = 0; i < mc; i += kMR) {
                        float* c = C + (i0 + i) * ldc + j0 + j;
                        const int64_t rows = std::min(kMR, mc - i);
                        const TileStore ts{first, first && store.bias ? store.bias + i0 + i : nullptr,
                                           last && store.relu};
                        if (tall && i + 2 * kMR <= mc) {
                            micro_kernel_12x16_avx512(kc, a + i * kc, a + (i + kMR) * kc, b + j * kc, c, ldc, ts);
                            i += kMR;
                        } else if (wide) {  // an edge panel's rows too: its packed rows past `rows` are zero
                            micro_kernel_6x32_avx512(kc, a + i * kc, b + j * kc, b + (j + kNR) * kc, c, ldc, int(rows),
                                                     ts);
                        } else {
                            micro_kernel(kc, a + i * kc, b + j * kc, c, ldc, rows, std::min(kNR, nc - j), ts);
                        }
                    }
                    j += wide ? 2 * kNR : kNR;
                }
            }
        }
    }
}

// One narrow panel on this process's width (native_gemm_narrow_impl.h).
template <int N>
void narrow_panel(int64_t K, const float* Ap, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t rows) {
    if (on_avx512()) return narrow_panel_48_avx512(N, K, Ap, B, ldb, C, ldc, rows);
    narrow_panel_rows<__m256, N>(K, Ap, B, ldb, C, ldc, rows);
}

}  // namespace

int64_t narrow_rows() { return on_avx512() ? 48 : 24; }

size_t packed_a_rows_floats(int64_t M, int64_t K) { return size_t(narrow_panels(M) * narrow_rows() * K); }

void pack_a_rows(int64_t M, int64_t K, const float* A, int64_t lda, float* out) {
    const int64_t panel_rows = narrow_rows();
    for (int64_t p = 0; p < narrow_panels(M); ++p)
        for (int64_t k = 0; k < K; ++k, out += panel_rows)
            for (int64_t r = 0; r < panel_rows; ++r) {
                const int64_t m = p * panel_rows + r;
                out[r] = m < M ? A[m * lda + k] : 0.0f;
            }
}

void gemm_packed_narrow(int64_t M, int64_t N, int64_t K, const float* packed, const float* B, int64_t ldb, float* C,
                        int64_t ldc, int64_t panel_begin, int64_t panel_end) {
    const int64_t panel_rows = narrow_rows();
    for (int64_t p = panel_begin; p < panel_end; ++p) {
        const float* Ap = packed + p * panel_rows * K;
        float* Cp = C + p * panel_rows * ldc;
        const int64_t rows = std::min(panel_rows, M - p * panel_rows);
        switch (N) {
            case 1:
                narrow_panel<1>(K, Ap, B, ldb, Cp, ldc, rows);
                break;
            case 2:
                narrow_panel<2>(K, Ap, B, ldb, Cp, ldc, rows);
                break;
            case 3:
                narrow_panel<3>(K, Ap, B, ldb, Cp, ldc, rows);
                break;
            default:
                narrow_panel<4>(K, Ap, B, ldb, Cp, ldc, rows);
                break;
        }
    }
}

size_t packed_a_floats(int64_t M, int64_t K) { return size_t((M + kMR - 1) / kMR * kMR * K); }

void pack_a_whole(int64_t M, int64_t K, const float* A, int64_t lda, float* out) {
    const Operand a{A, lda, 1};
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
        const int64_t kc = std::min(kKC, K - k0);
        for (int64_t i0 = 0; i0 < M; i0 += kMC)
            pack_a(a, i0, std::min(kMC, M - i0), k0, kc, out + packed_offset(M, i0, k0, kc));
    }
}

void gemm_packed_nn(int64_t M, int64_t N, int64_t K, const float* packed, const float* B, int64_t ldb, float* C,
                    int64_t ldc, int64_t row_begin, int64_t row_end, GemmStore store) {
    gemm(M, N, K, {}, packed, {B, ldb, 1}, C, ldc, row_begin, row_end, store);
}

void gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
    gemm(M, N, K, {A, lda, 1}, nullptr, {B, ldb, 1}, C, ldc);
}

void gemm_nt(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
    gemm(M, N, K, {A, lda, 1}, nullptr, {B, 1, ldb}, C, ldc);
}

void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
    gemm(M, N, K, {A, 1, lda}, nullptr, {B, ldb, 1}, C, ldc);
}

}  // namespace engine::native
