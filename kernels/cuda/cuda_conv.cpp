// Convolutions through cuDNN's convolution API (cudnn_cnn, deprecated but present in cuDNN 9):
// descriptors and algorithms made once per node at prepare(), the batch of the descriptors reset only
// when a run's batch differs (early exit shrinks it), the fused epilogue (bias, residual, ReLU) in one
// kernel of our own after cuDNN's convolution.
#include <algorithm>
#include <string>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"
#include "ref/ref_kernels.h"

namespace engine::cuda {

CudaBackend::ConvState::~ConvState() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
}

CudaBackend::~CudaBackend() {
    if (stream_) cudaStreamSynchronize(stream_);
    convs_.clear();
    if (workspace_) cudaFree(workspace_);
    if (cublas_workspace_) cudaFree(cublas_workspace_);
    if (cublas_) cublasDestroy(cublas_);
    if (cudnn_) cudnnDestroy(cudnn_);
    if (stream_) cudaStreamDestroy(stream_);
}

namespace {

// Keep the candidates that use the math the backend was asked for: FP32 FMA unless TF32 is allowed.
bool math_allowed(cudnnMathType_t m, bool tf32) { return tf32 || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH; }

// cuDNN's heuristic results (forward, backward-data or backward-filter) as the candidates the policy
// reads (returned in `candidates`, for error messages); the index choose_algo picks, -1 when none fits.
template <class Perf>
int pick_algo(const Perf* perf, int got, bool tf32, size_t workspace_bytes, std::vector<AlgoCandidate>& candidates) {
    for (int i = 0; i < got; ++i)
        candidates.push_back({int(perf[i].algo),
                              perf[i].status == CUDNN_STATUS_SUCCESS && math_allowed(perf[i].mathType, tf32),
                              perf[i].determinism == CUDNN_DETERMINISTIC, perf[i].memory, perf[i].time});
    return choose_algo(candidates, workspace_bytes);
}

}  // namespace

void CudaBackend::set_batch(ConvState& st, int n) const {
    if (st.n_set == n) return;
    const ConvParams& p = st.p;
    const int hp = p.h + (p.explicit_pad ? p.pad_top + p.pad_bottom : 0);
    const int wp = p.w + (p.explicit_pad ? p.pad_left + p.pad_right : 0);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(st.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, p.c, hp, wp), st.where);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(st.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, p.k, p.oh, p.ow), st.where);
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn_, st.x, st.w, st.conv, st.y, st.fwd, &st.ws_fwd),
                st.where);
    if (st.have_bwd_data)
        CUDNN_CHECK(
            cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn_, st.w, st.y, st.conv, st.x, st.bwd_data, &st.ws_data),
            st.where);
    if (st.have_bwd_filter)
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn_, st.x, st.y, st.conv, st.w, st.bwd_filter,
                                                                   &st.ws_filter),
                    st.where);
    const size_t need = std::max({st.ws_fwd, st.ws_data, st.ws_filter});
    if (need > workspace_bytes_)
        fail("cuda conv " + st.where + ": batch " + std::to_string(n) + " needs " + std::to_string(need) +
             " bytes of cuDNN workspace, more than the " + std::to_string(workspace_bytes_) +
             " reserved (raise ENGINE_CUDA_WORKSPACE_MB)");
    st.n_set = n;
}

void CudaBackend::prepare(const Node& node, const Shape* in, int n_in, const Shape& out) {
    if (node.op != Op::Conv) return;
    const ConvParams p = conv_params(node, in[0], in[1], out);
    auto& slot = convs_[&node];
    if (slot && same_conv(slot->p, p)) return;  // the same node in another plan of the same batch
    slot = std::make_unique<ConvState>();
    ConvState& st = *slot;
    st.p = p;
    st.where = "node '" + node.name + "' (x " + in[0].str() + ", w " + in[1].str() + ")";
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&st.x), st.where);
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&st.y), st.where);
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&st.w), st.where);
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&st.conv), st.where);
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(st.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.k, p.c / p.groups, p.kh, p.kw),
                st.where);
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(st.conv, p.pad_h, p.pad_w, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                st.where);
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(st.conv, p.groups), st.where);
    CUDNN_CHECK(cudnnSetConvolutionMathType(st.conv, tf32_ ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH), st.where);
    const int hp = p.h + (p.explicit_pad ? p.pad_top + p.pad_bottom : 0);
    const int wp = p.w + (p.explicit_pad ? p.pad_left + p.pad_right : 0);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(st.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.c, hp, wp), st.where);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(st.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.k, p.oh, p.ow), st.where);

    // Heuristic candidates at the plan's largest batch, best first; the policy (cuda_host_plan.cpp)
    // takes the first deterministic one that fits the workspace.
    constexpr int kMax = 16;
    int got = 0;
    {
        cudnnConvolutionFwdAlgoPerf_t perf[kMax];
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn_, st.x, st.w, st.conv, st.y, kMax, &got, perf),
                    st.where);
        std::vector<AlgoCandidate> c;
        const int pick = pick_algo(perf, got, tf32_, workspace_bytes_, c);
        if (pick < 0)
            fail("cuda conv " + st.where + ": no deterministic forward algorithm fits (" + describe_candidates(c) +
                 ")");
        st.fwd = perf[pick].algo;
    }
    {
        cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn_, st.w, st.y, st.conv, st.x, kMax, &got, perf),
                    st.where);
        std::vector<AlgoCandidate> c;
        const int pick = pick_algo(perf, got, tf32_, workspace_bytes_, c);
        st.have_bwd_data = pick >= 0;  // only backward needs it: an inference plan runs without
        if (pick >= 0)
            st.bwd_data = perf[pick].algo;
        else
            st.bwd_data_why = describe_candidates(c);
    }
    {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn_, st.x, st.y, st.conv, st.w, kMax, &got, perf),
                    st.where);
        std::vector<AlgoCandidate> c;
        const int pick = pick_algo(perf, got, tf32_, workspace_bytes_, c);
        st.have_bwd_filter = pick >= 0;
        if (pick >= 0)
            st.bwd_filter = perf[pick].algo;
        else
            st.bwd_filter_why = describe_candidates(c);
    }
    set_batch(st, p.n);  // checks the workspace at the largest batch
    set_batch(st, 1);    // and at one sample (workspace need is not monotone in the batch for every algorithm)
}

CudaBackend::ConvState& CudaBackend::conv_state(const Node& node) const {
    auto it = convs_.find(&node);
    if (it == convs_.end()) fail("cuda conv node '" + node.name + "': not prepared (run it through a Plan)");
    return *it->second;
}

std::string CudaBackend::conv_algorithms(const Node& node) const {
    const ConvState& st = conv_state(node);
    return "fwd " + std::to_string(int(st.fwd)) + ", bwd data " +
           (st.have_bwd_data ? std::to_string(int(st.bwd_data)) : std::string("none")) + ", bwd filter " +
           (st.have_bwd_filter ? std::to_string(int(st.bwd_filter)) : std::string("none")) +
           (st.p.explicit_pad ? ", explicit pad" : "");
}

void CudaBackend::conv_forward(const OpArgs& a) {
    const Node& node = a.node;
    ConvState& st = conv_state(node);
    const ConvParams& p = st.p;
    const TensorView x = a.in[0], w = a.in[1], y = a.out;
    const int n = static_cast<int>(x.shape[0]);
    set_batch(st, n);
    const float* xin = x.data;
    if (p.explicit_pad) {
        pad2d_forward(stream_, x.data, a.scratch, n, p.c, p.h, p.w, p.pad_top, p.pad_left, p.pad_bottom, p.pad_right);
        xin = a.scratch;
    }
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(cudnn_, &one, st.x, xin, st.w, w.data, st.conv, st.fwd, workspace_, st.ws_fwd,
                                        &zero, st.y, y.data),
                st.where);
    const ref::ConvInputs c = ref::conv_inputs(node.attrs, a.in, a.n_in);
    if (c.bias || c.residual || node.attrs.fused_relu)
        conv_epilogue(stream_, y.data, c.bias, c.residual, node.attrs.fused_relu, y.numel(), int64_t(p.oh) * p.ow, p.k);
}

void CudaBackend::conv_backward(const GradArgs& g) {
    const OpArgs& a = g.fwd;
    const Node& node = a.node;
    if (node.attrs.fused_residual || node.attrs.fused_relu)
        fail("cuda backend: node '" + node.name + "' is a fused inference convolution and has no gradient");
    ConvState& st = conv_state(node);
    const ConvParams& p = st.p;
    const TensorView x = a.in[0], w = a.in[1], gy = g.grad_out;
    const int n = static_cast<int>(x.shape[0]);
    set_batch(st, n);
    const float one = 1.0f, zero = 0.0f;
    const int64_t padded =
        p.explicit_pad ? int64_t(n) * p.c * (p.h + p.pad_top + p.pad_bottom) * (p.w + p.pad_left + p.pad_right) : 0;
    if (g.grad_in[1].data) {
        if (!st.have_bwd_filter)
            fail("cuda conv " + st.where + ": no deterministic weight-gradient algorithm fits (" + st.bwd_filter_why +
                 ")");
        const float* xin = x.data;
        if (p.explicit_pad) {
            pad2d_forward(stream_, x.data, a.scratch, n, p.c, p.h, p.w, p.pad_top, p.pad_left, p.pad_bottom,
                          p.pad_right);
            xin = a.scratch;
        }
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, &one, st.x, xin, st.y, gy.data, st.conv, st.bwd_filter,
                                                   workspace_, st.ws_filter, &one, st.w, g.grad_in[1].data),
                    st.where);
    }
    if (g.grad_in[0].data) {
        if (!st.have_bwd_data)
            fail("cuda conv " + st.where + ": no deterministic input-gradient algorithm fits (" + st.bwd_data_why +
                 ")");
        if (p.explicit_pad) {
            float* gxp = a.scratch + padded;
            CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, &one, st.w, w.data, st.y, gy.data, st.conv, st.bwd_data,
                                                     workspace_, st.ws_data, &zero, st.x, gxp),
                        st.where);
            pad2d_backward(stream_, gxp, g.grad_in[0].data, n, p.c, p.h, p.w, p.pad_top, p.pad_left, p.pad_bottom,
                           p.pad_right);
        } else {
            CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, &one, st.w, w.data, st.y, gy.data, st.conv, st.bwd_data,
                                                     workspace_, st.ws_data, &one, st.x, g.grad_in[0].data),
                        st.where);
        }
    }
    if (a.n_in > 2 && g.grad_in[2].data)
        bias_backward(stream_, gy.data, g.grad_in[2].data, n, p.k, int64_t(p.oh) * p.ow);
}

}  // namespace engine::cuda
