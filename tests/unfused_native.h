// The native kernels with the inference fusion of conv epilogues and Winograd turned off: the
// unfused plan, with the arithmetic of training plans, that fused ones are compared against.
#pragma once
#include "cpu/cpu_backend.h"

namespace test {

class UnfusedNative : public engine::cpu::CpuBackend {
public:
    explicit UnfusedNative(int threads = 0) : CpuBackend(threads) {}
    bool fuses_conv_epilogue() const override { return false; }
    bool uses_winograd() const override { return false; }
};

}  // namespace test
