// The cuda backend: cuDNN convolutions (forward and both gradients, algorithm chosen once per node at
// plan time from cuDNN's heuristics among the deterministic ones, FP32 unless ENGINE_CUDA_TF32=1),
// cuBLAS for Gemm, and this folder's own kernels for everything else (epilogues, BatchNorm,
// element-wise ops, pooling, softmax). Tensors live in device memory: Plans allocate and copy through
// the Backend memory hooks. One stream, one cuDNN and one cuBLAS handle; nothing is allocated on the
// inference path (the convolution workspace is one buffer made at construction).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <memory>
#include <unordered_map>

#include "cuda/cuda_host_plan.h"
#include "engine/backend.h"

namespace engine::cuda {

// Devices visible to this process; 0 with `why` set when there is none or no driver.
int device_count(std::string* why = nullptr);

class CudaBackend : public Backend {
public:
    // Throws "backend 'cuda': no CUDA device (cudaGetDeviceCount: ...)" without one. tf32: let
    // convolutions and Gemm use TF32 tensor cores (default: ENGINE_CUDA_TF32=1 in the environment).
    explicit CudaBackend(int tf32 = -1);
    ~CudaBackend() override;
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    std::string name() const override { return "cuda"; }
    bool fuses_conv_epilogue() const override { return true; }
    size_t scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const override;
    void prepare(const Node& node, const Shape* in, int n_in, const Shape& out) override;
    void forward(const OpArgs& a) override;
    void backward(const GradArgs& a) override;

    bool device_memory() const override { return true; }
    float* device_alloc(size_t floats) override;
    void device_free(float* p) override;
    void upload(float* device_dst, const float* host_src, size_t floats) override;
    void download(float* host_dst, const float* device_src, size_t floats) override;
    void device_copy(float* dst, const float* src, size_t floats) override;
    void device_zero(float* dst, size_t floats) override;

    // Early exit as one CUDA graph (cuda_graph_exits.cpp); null when ENGINE_CUDA_GRAPH_EXIT=0.
    std::unique_ptr<EarlyExitRunner> make_early_exit(Plan& plan, const float* thresholds) override;

    cudaStream_t stream() const { return stream_; }
    bool tf32() const { return tf32_; }
    void synchronize();
    // The algorithms chosen for a prepared convolution node (for tests and the bench's report).
    std::string conv_algorithms(const Node& node) const;

private:
    // One convolution node's cuDNN descriptors and algorithms (cuda_conv.cpp).
    struct ConvState {
        ConvParams p{};
        cudnnTensorDescriptor_t x = nullptr, y = nullptr;  // x: the padded input when p.explicit_pad
        cudnnFilterDescriptor_t w = nullptr;
        cudnnConvolutionDescriptor_t conv = nullptr;
        cudnnConvolutionFwdAlgo_t fwd{};
        cudnnConvolutionBwdDataAlgo_t bwd_data{};
        cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
        bool have_bwd_data = false, have_bwd_filter = false;  // only backward needs them
        std::string bwd_data_why, bwd_filter_why;             // why none fits, for the error
        int n_set = -1;                                       // batch the x and y descriptors describe
        size_t ws_fwd = 0, ws_data = 0, ws_filter = 0;        // workspace bytes at n_set
        std::string where;                                    // "node 'name' (x [...], w [...])"
        ConvState() = default;
        ConvState(const ConvState&) = delete;
        ConvState& operator=(const ConvState&) = delete;
        ~ConvState();
    };
    ConvState& conv_state(const Node& node) const;
    void set_batch(ConvState& st, int n) const;
    void conv_forward(const OpArgs& a);
    void conv_backward(const GradArgs& g);
    // Row-major Z[m, n] = alpha * op(X) * op(Y) + beta * Z (op(X) is [m, k], op(Y) is [k, n]).
    void gemm_rm(bool tx, bool ty, int64_t m, int64_t n, int64_t k, float alpha, const float* x, const float* y,
                 float beta, float* z, const Node& node);
    void gemm_forward(const OpArgs& a);
    void gemm_backward(const GradArgs& g);

    int device_ = 0;
    bool tf32_ = false;
    cudaStream_t stream_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    void* workspace_ = nullptr;  // cuDNN's, shared by every node (one stream: never two at once)
    size_t workspace_bytes_ = 0;
    void* cublas_workspace_ = nullptr;
    std::unordered_map<const Node*, std::unique_ptr<ConvState>> convs_;
};

}  // namespace engine::cuda
