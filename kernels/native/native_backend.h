// The default CPU backend: Winograd F(4x4, 3x3) or F(2x2, 3x3) for 3x3 stride-1 convolutions up to 256 channels in
// and out (native_winograd.cpp), forward and input gradient; direct AVX2/FMA 3x3 convolutions
// (native_conv3x3.cpp) for stride 2 and the weight gradient of stride 1; im2col + packed GEMM for the
// other convolutions (direct loops for depthwise), the fused conv epilogue
// (residual, ReLU) of inference plans, fast paths for the element-wise ops and SDN head pooling,
// OpenMP across the batch or the output channels, with a team started, pinned and flushing denormals
// at construction (native_threads.cpp). Everything else is the reference code.
#pragma once
#include <unordered_map>
#include <vector>

#include "ref/ref_kernels.h"

namespace engine::native {

class NativeBackend : public ref::RefBackend {
public:
    explicit NativeBackend(int threads = 0);  // 0: one per core
    std::string name() const override { return "native"; }
    bool fuses_conv_epilogue() const override { return true; }
    size_t scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const override;
    void prepare(const Node& node, const Shape* in, int n_in, const Shape& out) override;
    void forward(const OpArgs& a) override;
    void backward(const GradArgs& a) override;

private:
    // A convolution's weights transformed for its kernel (Winograd, or packed for its GEMM). In an
    // inference-only plan they are made on the first run (the plan's warm-up) and remade when the
    // weights move; a new plan (prepare) drops them. Plans that keep every value (training,
    // gradients) transform into scratch on every run, as their weights may change in place.
    struct TransformedWeights {
        const float* source = nullptr;
        std::vector<float> data;
    };
    // transform(w, out) writes `floats` floats; it is defined beside its callers in native_backend.cpp.
    template <class Transform>
    const float* transformed(const OpArgs& a, size_t floats, float* scratch_spot, const Transform& transform);
    bool winograd_conv(const OpArgs& a, const float* bias, const float* residual);
    bool gemm_conv(const OpArgs& a, const float* bias, const float* residual);

    int threads_;
    std::unordered_map<const Node*, TransformedWeights> transformed_;
};

}  // namespace engine::native
