// Fine-tuning a model whose BatchNorms were folded into its convolutions (Conv with bias, no
// BatchNorm): trained in that form it diverges at learning rates the BatchNorm form takes, so
// training re-inserts a BatchNorm after each such convolution and folds it back afterwards.
#pragma once
#include "engine/api.h"
#include <vector>

#include "engine/backend.h"
#include "engine/dataset.h"
#include "engine/model.h"

namespace engine::train {

// Inserts a BatchNorm after every Conv that no BatchNorm reads and whose weight (and bias) are
// Constants read by it alone; other convolutions are left as they are. Each new BatchNorm is
// named "<conv>.bn" with parameters "<conv>.bn.weight", ".bias" (trainable), ".running_mean"
// and ".running_var". Per output channel, with m and v the mean and variance of w*x over the
// first `images` samples of `data` (inference mode, no augmentation): the weight is divided by
// sqrt(v), so the convolution's output has unit variance; the bias moves into the BatchNorm's
// shift (the conv keeps a zero bias, which BatchNorm makes redundant, so that folding back
// restores the same nodes). Running mean, variance, gamma and beta are set so that the network
// computes the same function in inference mode. Returns the new BatchNorm node indices.
// Unit variance also fixes each channel's weight norm, and with it the channel's effective
// learning rate under BatchNorm (about lr / |w|^2): it is not the original BN model's, whose
// weight scale folding erased, so fine-tuning follows a different trajectory from that model's.
ENGINE_API std::vector<int> insert_batchnorms(Model& model, const Dataset& data, int images, Backend& backend);

// Folds each listed BatchNorm (input 0 a Conv read by nothing else, inputs 1..4 Constants read
// by it alone) into its convolution with the running statistics and removes it and its four
// constants; nodes keep their relative order. A convolution without a bias gets one, named
// "<conv>.bias", just before it. Throws naming the first BatchNorm that cannot be folded.
ENGINE_API void fold_batchnorms(Graph& graph, const std::vector<int>& batchnorms);

}  // namespace engine::train
