// The default CPU backend: Winograd F(4x4, 3x3) or F(2x2, 3x3) for 3x3 stride-1 convolutions
// (native_winograd.cpp), forward and input gradient, with AVX-512 products where the CPU has them;
// direct AVX2/FMA 3x3 convolutions (native_conv3x3.cpp) for stride 2 and the weight gradient of
// stride 1; im2col + packed GEMM for the other convolutions (direct loops for depthwise). Inference
// plans run each convolution on the kernel that was fastest for its shape on this CPU, timed at plan
// time (native_conv_tuner.h; ENGINE_KERNELS=fixed keeps the fixed rule); the fused conv epilogue
// (residual, ReLU) of inference plans, fast paths for the element-wise ops and SDN head pooling,
// OpenMP across the batch or the output channels, with a team started, pinned and flushing denormals
// at construction (native_threads.cpp). Everything else is the reference code.
#pragma once
#include <unordered_map>
#include <vector>

#include "engine/aligned_vector.h"
#include "native_conv_kernels.h"
#include "native_conv_tuner.h"
#include "ref/ref_kernels.h"

namespace engine::native {

// How the backend picks its kernels; from_env() reads ENGINE_KERNELS and ENGINE_NATIVE_ISA (native_isa.h).
struct NativeOptions {
    KernelMode kernels = KernelMode::tuned;
    Isa isa = Isa::avx2;
    static NativeOptions from_env();
};

class NativeBackend : public ref::RefBackend {
public:
    explicit NativeBackend(int threads = 0, NativeOptions options = NativeOptions::from_env());  // 0: one per core
    std::string name() const override { return "native"; }
    bool fuses_conv_epilogue() const override { return true; }
    bool fuses_training_elementwise() const override { return true; }
    size_t scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const override;
    void prepare(const Node& node, const Shape* in, int n_in, const Shape& out) override;
    void forward(const OpArgs& a) override;
    void backward(const GradArgs& a) override;
    bool writes_fresh_grads() const override { return true; }
    // Eight samples a thread: MobileNet at batch 128 on this 2-core Xeon, images/s by chunk of 128, 64,
    // 32, 16, 8: 2,267, 2,330, 2,361, 2,389, 2,386 (ResNet-56 1,747 at 128, 1,783 at 16).
    int inference_chunk() const override { return 8 * threads_; }

    // For tests and benchmarks: every convolution of the plans prepared from now on runs on the first
    // of `ks` that can run it, else on the fixed rule's kernel; {} goes back to tuning (or the fixed rule).
    void force_conv_kernels(std::vector<ConvKernel> ks) { forced_ = std::move(ks); }
    void force_conv_kernel(ConvKernel k) { forced_ = {k}; }
    // The kernel the last convolution ran on.
    ConvKernel last_conv_kernel() const { return last_kernel_; }
    const NativeOptions& options() const { return options_; }

private:
    // A convolution's weights transformed for its kernel (Winograd, or packed for its GEMM). In an
    // inference-only plan they are made on the first run (the plan's warm-up) and remade when the
    // weights move; a new plan (prepare) drops them. Plans that keep every value (training,
    // gradients) transform into scratch on every run, as their weights may change in place.
    struct TransformedWeights {
        const float* source = nullptr;
        AlignedVector<float> data;
    };
    // transform(w, out) writes `floats` floats; it is defined beside its callers in native_backend.cpp.
    template <class Transform>
    const float* transformed(const OpArgs& a, size_t floats, float* scratch_spot, const Transform& transform);
    void conv(const OpArgs& a, const float* bias, const float* residual);

    int threads_;
    NativeOptions options_;
    std::vector<ConvKernel> forced_;
    ConvKernel last_kernel_ = ConvKernel::other;
    std::unordered_map<const Node*, TransformedWeights> transformed_;
    // Each BatchNorm's k and shift from its last forward (batchnorm_train_forward's `normalisation`),
    // where a ReLU and no residual follow it: its backward then reads the mask from x, not y. Valid
    // after a training forward; an inference forward of the node makes them stale.
    struct Normalisation {
        bool valid = false;
        std::vector<float> k_shift;
    };
    float* record_normalisation(const OpArgs& a);  // null where the backward would not use it
    const float* recorded_normalisation(const OpArgs& a) const;
    std::unordered_map<const Node*, Normalisation> normalisation_;
    // Each convolution's kernel, chosen by prepare(): the same for a convolution's shapes at any batch
    // size and thread count, in inference and training plans alike, so that they agree to the bit.
    std::unordered_map<const Node*, ConvKernel> kernel_;
};

}  // namespace engine::native
