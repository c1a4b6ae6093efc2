// The default CPU backend: convolutions as im2col + blocked GEMM (direct loops for depthwise),
// fast paths for the element-wise ops, OpenMP across the batch. Everything else is the
// reference code. Plain C++ that the compiler vectorises; the hand-tuned kernels come later.
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
