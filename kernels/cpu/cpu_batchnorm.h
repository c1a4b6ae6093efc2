// BatchNorm in training mode (batch statistics) on the CPU backend: one pass per channel for
// the statistics, one for the normalisation, float arithmetic with double channel sums.
#pragma once
#include "engine/backend.h"

namespace engine::cpu {

void batchnorm_train_forward(const Attrs& a, const TensorView* in, TensorView y);
void batchnorm_backward(const Attrs& a, const TensorView* in, TensorView gy, TensorView* gin, bool training);

}  // namespace engine::cpu
