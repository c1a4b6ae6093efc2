// Reference kernels: plain loops written for clarity, the oracle every other backend is
// tested against. Each forward has a backward that accumulates into the gradients it is given
// (a null data pointer means "not needed").
#pragma once
#include "engine/backend.h"

namespace engine::ref {

void conv_forward(const Attrs& a, TensorView x, TensorView w, const float* bias, TensorView y);
void conv_backward(const Attrs& a, TensorView x, TensorView w, TensorView gy, TensorView gx, TensorView gw,
                   float* gbias);
// The fused Conv's inputs: bias is null when absent, residual is null unless attrs.fused_residual.
struct ConvInputs {
    const float* bias;
    const float* residual;
};
ConvInputs conv_inputs(const Attrs& a, const TensorView* in, int n_in);
// y = relu?(y + residual?) in place: the epilogue the fusion pass folds into a Conv.
void conv_epilogue(const Attrs& a, const float* residual, TensorView y);

void pool_forward(Op op, const Attrs& a, TensorView x, TensorView y);
void pool_backward(Op op, const Attrs& a, TensorView x, TensorView y, TensorView gy, TensorView gx);
void mixed_pool_forward(const Attrs& a, TensorView x, float alpha, TensorView y);
void mixed_pool_backward(const Attrs& a, TensorView x, float alpha, TensorView gy, TensorView gx, float* galpha);
void global_avg_pool_forward(TensorView x, TensorView y);
void global_avg_pool_backward(TensorView gy, TensorView gx);

void binary_forward(Op op, TensorView a, TensorView b, TensorView y);
void binary_backward(Op op, TensorView a, TensorView b, TensorView gy, TensorView ga, TensorView gb);

void batchnorm_forward(const Attrs& a, TensorView x, TensorView scale, TensorView bias, TensorView mean, TensorView var,
                       TensorView y, bool training);
void batchnorm_backward(const Attrs& a, TensorView x, TensorView scale, TensorView mean, TensorView var, TensorView gy,
                        TensorView gx, TensorView gscale, TensorView gbias, bool training);

void gemm_forward(const Attrs& a, TensorView A, TensorView B, const TensorView* C, TensorView y);
void gemm_backward(const Attrs& a, TensorView A, TensorView B, const TensorView* C, TensorView gy, TensorView gA,
                   TensorView gB, TensorView gC);

void softmax_forward(int64_t axis, TensorView x, TensorView y);
void softmax_backward(int64_t axis, TensorView y, TensorView gy, TensorView gx);

void pad_forward(const Attrs& a, TensorView x, TensorView y);
void pad_backward(const Attrs& a, TensorView gy, TensorView gx);

// Dropout keeps element i when hash(seed, i) >= ratio and scales it by 1/(1-ratio).
void dropout_forward(float ratio, uint64_t seed, TensorView x, TensorView y, bool training);
void dropout_backward(float ratio, uint64_t seed, TensorView gy, TensorView gx, bool training);

// The reference backend: dispatches every op to the loops above.
class RefBackend : public Backend {
public:
    std::string name() const override { return "ref"; }
    bool fuses_conv_epilogue() const override { return true; }
    void forward(const OpArgs& a) override;
    void backward(const GradArgs& a) override;
};

// Seed for a node's dropout mask: the step seed mixed with the node's name.
uint64_t node_seed(const Node& node, uint64_t step_seed);

}  // namespace engine::ref
