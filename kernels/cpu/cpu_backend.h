// The default CPU backend: direct AVX2/FMA 3x3 stride-1 and -2 convolutions (cpu_conv3x3.cpp), which also
// give the input gradient of the stride-1 ones; im2col + packed GEMM for the other convolutions and
// for weight gradients (direct loops for depthwise), the fused conv epilogue
// (residual, ReLU) of inference plans, fast paths for the element-wise ops and SDN head pooling,
// OpenMP across the batch or the output channels, with a team started, pinned and flushing denormals
// at construction (cpu_threads.cpp). Everything else is the reference code.
#pragma once
#include "ref/ref_kernels.h"

namespace engine::cpu {

class CpuBackend : public ref::RefBackend {
public:
    explicit CpuBackend(int threads = 0);  // 0: one per core
    std::string name() const override { return "native"; }
    bool fuses_conv_epilogue() const override { return true; }
    size_t scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const override;
    void forward(const OpArgs& a) override;
    void backward(const GradArgs& a) override;

private:
    int threads_;
};

}  // namespace engine::cpu
