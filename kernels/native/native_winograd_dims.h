// The geometry of one Winograd convolution (native_winograd.cpp) and the channel-vectorised variant
// it hands 8x8 planes to (native_winograd_channels.cpp). Internal to the native backend.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/aligned_vector.h"
#include "native_winograd.h"

namespace engine::native::winograd {

inline constexpr int kKb = 6;    // output channels per product block, vectorised over tiles
inline constexpr int kTb = 16;   // tiles per product block, vectorised over tiles
inline constexpr int kKbc = 24;  // output channels per product block, vectorised over channels
inline constexpr int kTbc = 4;   // tiles per product block, vectorised over channels
// AVX-512 (native_winograd_avx512.cpp): 16 output channels x 16 tiles (one zmm) a block over tiles,
// 64 output channels (four zmm) x 4 tiles over channels; 16 accumulators of its 32 registers either way.
inline constexpr int kKb512 = 16;
inline constexpr int kKbc512 = 64;

struct Dims {
    int64_t m, alpha, xis;      // output tile side, input tile side, positions per tile
    bool over_channels;         // the product vectorises over output channels (WinogradPlan)
    bool avx512;                // the product is native_winograd_avx512.cpp's
    int64_t C, H, W, K, TW, T;  // TW: tiles per row; T: tiles
    int64_t tb, kb;             // tiles, output channels per product block
    int64_t seg, Wp, plane;     // floats per phase of a padded row, per padded row, per padded plane
    int64_t vstride;            // floats per position xi of V
    bool grid;                  // AVX-512 on a plane of 4 x 4 tiles (input_transform_grid_avx512)
    bool unpadded;              // the input transform reads the input as it is (F4 on AVX-512, or grid)
};

inline Dims dims_of(WinogradPlan plan, const Shape& x, const Shape& w) {
    const int64_t m = plan.m;
    const int64_t kb = plan.over_channels ? (plan.avx512 ? kKbc512 : kKbc) : (plan.avx512 ? kKb512 : kKb);
    Dims d{m,
           m + 2,
           (m + 2) * (m + 2),
           plan.over_channels,
           plan.avx512,
           x[1],
           x[2],
           x[3],
           w[0],
           x[3] / m,
           x[2] / m * (x[3] / m),
           plan.over_channels ? kTbc : kTb,
           kb,
           x[3] / m + 1,
           0,
           0,
           0,
           false,
           false};
    d.Wp = m * d.seg;
    d.grid = plan.avx512 && !plan.over_channels && d.H == 4 * m && d.W == 4 * m;
    d.unpadded = d.grid || (plan.avx512 && m == 4 && !plan.over_channels && d.TW % 8 == 0);
    d.plane = (d.H + 2) * d.Wp;
    // One cache line more than the C x tiles of a block: with a power-of-two stride, the input
    // transform's stores to every position would fall in the same few L1 sets and evict each other.
    // Whole lines, so that every position's zmm stores start on a line.
    d.vstride = whole_lines(d.C * d.tb) + 16;
    return d;
}

inline int64_t k_blocks(const Dims& d) { return (d.K + d.kb - 1) / d.kb; }
inline int64_t tile_blocks(const Dims& d) { return d.T / d.tb; }

// Floats of the padded input (shared by a sample's threads), and of one thread's V and M blocks, in
// whole lines: from a line-aligned scratch, V and M start on lines.
inline size_t padded_floats(const Dims& d) { return whole_lines(size_t(d.C * d.plane)); }
inline size_t block_floats(const Dims& d) { return whole_lines(size_t(d.xis * (d.vstride + d.tb * d.K))); }
// Floats of the transformed weights U: [xi][output channel block][c][channel in block].
inline size_t weights_floats(const Dims& d) { return size_t(d.xis * k_blocks(d) * d.kb * d.C); }

// Output channel blocks [kb0, kb1) of one padded sample (xp) on an 8x8 plane: y = relu?(conv + bias?
// + residual?), with u packed for 24-channel blocks; work holds block_floats(d) floats.
void blocks_over_channels(const Dims& d, const float* xp, const float* u, const float* bias, const float* residual,
                          bool relu, float* y, int64_t kb0, int64_t kb1, float* work);

// The AVX-512 products (native_winograd_avx512.cpp), for output channel blocks [kb0, kb1): over tiles,
// M = U V for the 16 tiles of V; over channels, the 4 tiles of an 8x8 plane (K a multiple of 16).
void product_avx512(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1);
void product_over_channels_avx512(const Dims& d, const float* u, const float* v, float* m, int64_t kb0, int64_t kb1);
// The tile-vectorised transforms of block b, 16 tiles a zmm (native_winograd.cpp's, on AVX-512), for
// planes of a multiple of 8 tiles a row. xp is the padded sample, or (d.unpadded) the sample itself.
void input_transform_avx512(const Dims& d, const float* xp, int64_t b, float* v);
// The transforms of a plane of 4 x 4 tiles (d.grid, one block); the input one reads the unpadded sample x
// (native_winograd_grid_avx512.cpp).
void input_transform_grid_avx512(const Dims& d, const float* x, float* v);
// Its output transform: y = relu?(A^T m A + bias? + residual?) for output channels [k0, k1).
void output_transform_grid_avx512(const Dims& d, const float* m, const float* bias, const float* residual, bool relu,
                                  float* y, int64_t k0, int64_t k1);
void output_transform_avx512(const Dims& d, const float* m, int64_t b, const float* bias, const float* residual,
                             bool relu, float* y, int64_t k0, int64_t k1);

}  // namespace engine::native::winograd
