// The arithmetic of folding an inference-mode BatchNorm into the convolution before it, shared
// by the graph passes that fold: the inference fusion and training's renormalisation.
#pragma once
#include "engine/api.h"
#include "engine/tensor.h"

namespace engine {

// BatchNorm(Conv(x, w, b)) with running statistics equals Conv(x, w', b') where, per output
// channel k with s = gamma[k] / sqrt(var[k] + epsilon):
//   w'[k] = w[k] * s        b'[k] = (b[k] - mean[k]) * s + beta[k]
// Rewrites `weight` ([K, ...]) and `bias` ([K]; pass zeros for a convolution without bias) in place.
ENGINE_API void fold_batchnorm_into_conv(Tensor& weight, Tensor& bias, const Tensor& gamma, const Tensor& beta,
                                         const Tensor& mean, const Tensor& var, float epsilon);

}  // namespace engine
