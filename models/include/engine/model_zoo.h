// Model builders by name: the SDN multi-exit CNNs of ../shared/models/README.md (ResNet-56,
// VGG-16-BN, MobileNet) and two small nets for tests and demos, freshly initialised.
//
// Every model starts with the per-channel normalisation (Sub mean, Div std) on the input
// "image" (N, in_channels, image_size, image_size, values in [0, 1]), keeps BatchNorm unfolded
// (Conv without bias, then BatchNorm; running mean/var are constants that training updates but
// that are not trainable), and exposes its exits as graph outputs exit0..exitK in depth order.
// Node names follow the PyTorch module tree of the shared SDN models with a "segs." prefix, e.g.
// "segs.0.layers.2.c1.weight" or "segs.3.ic.fc.bias": one segment per exit, the internal
// classifier (IC) of segment k under "segs.<k>.ic". Every IC owns an "alpha" even where its
// feature map is too small to pool (then alpha is unused), exactly as the shared PyTorch models.
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/model.h"

namespace engine {

// arch: one of model_names().
//   resnet56   SDN ResNet-56, 7 exits; image_size 32 or 64 (64: stride-2 first conv, as SDN does
//              for Tiny-ImageNet).
//   vgg16      SDN VGG-16-BN, 7 exits (ICs after conv layers 2, 4, 6, 7, 9, 10 as in the SDN code);
//              image_size 32 (FC 512-512) or 64 (FC 2048-1024).
//   mobilenet  SDN MobileNet, 6 exits; image_size 32 or 64.
//   small      ResNet-style 16/32/64 channels, two basic blocks per stage, 4 exits (after blocks
//              2, 3 and 5 of 6, then the final classifier); about 193 k parameters and 27 M
//              multiply-adds at 32x32 with 10 classes; any image_size from 8 to 256.
//   tiny       3 exits, about 6.6 k parameters with 10 classes: for unit tests and gradient
//              checks; any image_size from 4 to 256.
// in_channels: 3 (RGB) for every arch; 1 (grayscale, e.g. Fashion-MNIST 28x28) for small and tiny.
// The normalisation constants are chosen from the input kind: 1 channel -> Fashion-MNIST,
// 64x64 RGB -> Tiny-ImageNet, 32x32 RGB with 100 classes -> CIFAR-100, else CIFAR-10; the choice is
// recorded in metadata["normalization"]. Initialisation is a pure function of `seed`: conv
// weights He-normal (fan_out), BatchNorm scale 1 / bias 0 / mean 0 / var 1, linear weights and
// biases uniform(+-1/sqrt(fan_in)), IC alpha 0.5. Thresholds default to 0.9.
ENGINE_API Model build_model(const std::string& arch, int num_classes, int image_size, uint64_t seed,
                             int in_channels = 3);

ENGINE_API std::vector<std::string> model_names();

// Loads a PyTorch SDN state dict (safetensors, as ../shared/models/*_s1.safetensors) into a model
// built by build_model with the same arch and sizes. Keys map by name: "<key>" or "segs.<key>"
// must be a Constant of the model with the same shape; num_batches_tracked entries are ignored;
// every parameter and BatchNorm statistic of the model must be given. Throws naming the file
// and the first key or node that does not fit.
ENGINE_API void load_pytorch_state(Model& model, const std::string& safetensors_path);

}  // namespace engine
