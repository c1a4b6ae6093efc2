// The native kernels with the inference fusion of conv epilogues turned off: the unfused plan
// that fused ones are compared against.
#pragma once
#include "cpu/cpu_backend.h"

namespace test {

class UnfusedNative : public engine::cpu::CpuBackend {
public:
    explicit UnfusedNative(int threads = 0) : CpuBackend(threads) {}
    bool fuses_conv_epilogue() const override { return false; }
};

}  // namespace test
