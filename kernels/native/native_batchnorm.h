// BatchNorm in training mode (batch statistics) on the CPU backend: one pass per channel for
// the statistics, one for the normalisation, float arithmetic with double channel sums.
// Groups of adjacent channels are shared out between threads; each channel's sums stay in one thread,
// in sample order, so results do not depend on the thread count.
#pragma once
#include "engine/backend.h"

namespace engine::native {

// Batch statistics. a.fused_residual: in[5] is added after the normalisation; a.fused_relu: then ReLU.
// normalisation, where given: each channel's k (scale over the batch's standard deviation) at [c] and
// shift at [C + c], as y = x * k + shift used them.
void batchnorm_train_forward(const Attrs& a, const TensorView* in, TensorView y, float* normalisation, int threads);
// Running statistics, with the same fused residual and ReLU.
void batchnorm_inference(const Attrs& a, const TensorView* in, TensorView y);
// gin[0] += d loss / d x (gin[0] = where gx_fresh); scale and bias gradients gin[1], gin[2] are added to.
// a.fused_relu: y is the forward's output, and gy passes only where y > 0. a.fused_residual: that
// gradient also goes to gin[5], the residual's (written where residual_fresh). normalisation: the
// training forward's (above), or null; with it, a fused ReLU without a residual takes its mask from x,
// so that y is not read.
void batchnorm_backward(const Attrs& a, const TensorView* in, TensorView y, TensorView gy, TensorView* gin,
                        bool gx_fresh, bool residual_fresh, bool training, const float* normalisation, int threads);

}  // namespace engine::native
