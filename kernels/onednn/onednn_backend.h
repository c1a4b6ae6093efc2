// The oneDNN backend (oneDNN 2.6, Debian libdnnl-dev): Conv, BatchNorm, Relu, MaxPool/AvgPool,
// Gemm and same-shape Add run on oneDNN primitives, forward and backward. Two exceptions run the
// native backend: batch-statistics BatchNorm (oneDNN's NCHW one is a generic loop) and the SDN
// heads' mixed pooling (oneDNN has none). Every other op (and any attribute combination oneDNN
// cannot express exactly) is the reference code.
//
// Primitives are made in prepare() for the plan's maximum batch and cached per (node, batch
// size). A smaller batch (early exit compacts the batch) makes its primitives on first use: the
// first run at a new batch size allocates and searches, later runs do not (oneDNN 2.6 itself still
// allocates a few small blocks per primitive execution). Convolutions let oneDNN pick blocked
// layouts: weights are packed on a plan's first run (and on every run of a plan that keeps all
// values, as training and gradient plans do: their weights may change in place), activations are reordered from and
// back to NCHW around each convolution. One stream and one work buffer: run one plan on it at a time.
#pragma once
#include <memory>

#include "ref/ref_kernels.h"

namespace engine::onednn {

struct State;  // oneDNN engine, stream, shared work buffer and the primitive cache

class OnednnBackend : public ref::RefBackend {
public:
    explicit OnednnBackend(int threads = 0);  // 0: one per core
    ~OnednnBackend() override;
    std::string name() const override { return "onednn"; }
    void prepare(const Node& node, const Shape* in, int n_in, const Shape& out) override;
    bool fuses_conv_epilogue() const override { return false; }  // its convolutions have no residual/ReLU epilogue
    void forward(const OpArgs& a) override;
    void backward(const GradArgs& a) override;

    // True when the node's inference forward at batch n has a oneDNN primitive (checked by tests:
    // a backend that silently fell back to the reference code would otherwise pass them).
    bool accelerates(const Node& node, int n) const;

private:
    int threads_;
    std::unique_ptr<State> state_;
    std::unique_ptr<Backend> native_;  // the ops that oneDNN runs slowly or not at all
};

}  // namespace engine::onednn
