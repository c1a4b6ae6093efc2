// The native kernels with the plans' fusions turned off (conv epilogues in inference, ReLU into
// BatchNorm and Add in training): the unfused plan that fused ones are compared against.
#pragma once
#include "native/native_backend.h"

namespace test {

class UnfusedNative : public engine::native::NativeBackend {
public:
    explicit UnfusedNative(int threads = 0) : NativeBackend(threads) {}
    bool fuses_conv_epilogue() const override { return false; }
    bool fuses_training_elementwise() const override { return false; }
};

}  // namespace test
