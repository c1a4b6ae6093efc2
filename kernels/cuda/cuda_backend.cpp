// CudaBackend: construction, memory hooks and the per-op dispatch; convolutions are in cuda_conv.cpp,
// Gemm in cuda_gemm.cpp, kernels in the .cu files.
#include "cuda/cuda_backend.h"

#include <cstdlib>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"
#include "ref/ref_kernels.h"  // node_seed: Dropout masks as the reference draws them

namespace engine::cuda {

void fail_call(const char* lib, const char* call, const char* message, const char* file, int line,
               const std::string& context) {
    std::string f = file;
    const auto slash = f.find_last_of('/');
    if (slash != std::string::npos) f = f.substr(slash + 1);
    fail(std::string("cuda backend: ") + lib + " " + call + " failed: " + message + " (" + f + ":" +
         std::to_string(line) + (context.empty() ? "" : ", " + context) + ")");
}

const char* cublas_status_name(cublasStatus_t e) {
    switch (e) {
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED:
            return "allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "invalid value";
        case CUBLAS_STATUS_ARCH_MISMATCH:
            return "architecture mismatch";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "execution failed";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "not supported";
        default:
            return "error";
    }
}

int device_count(std::string* why) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
        cudaGetLastError();  // clear the sticky-free error so later calls start clean
        return 0;
    }
    if (count == 0 && why) *why = "cudaGetDeviceCount: 0 devices";
    return count;
}

namespace {

size_t env_size(const char* name, size_t fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace

CudaBackend::CudaBackend(int tf32) {
    std::string why;
    if (device_count(&why) == 0) fail("backend 'cuda': no CUDA device (" + why + ")");
    const char* t = std::getenv("ENGINE_CUDA_TF32");
    tf32_ = tf32 >= 0 ? tf32 != 0 : (t && std::string(t) == "1");
    device_ = static_cast<int>(env_size("ENGINE_CUDA_DEVICE", 0));
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // cuBLAS gets its own workspace so that it never allocates, in particular not while a graph is captured.
    const size_t cublas_bytes = size_t(32) << 20;
    CUDA_CHECK(cudaMalloc(&cublas_workspace_, cublas_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, cublas_bytes));
    CUBLAS_CHECK(cublasSetMathMode(cublas_, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    // One convolution workspace for the backend's life: algorithms are chosen to fit it, and captured
    // graphs may keep its address.
    workspace_bytes_ = env_size("ENGINE_CUDA_WORKSPACE_MB", 256) << 20;
    CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

void CudaBackend::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

float* CudaBackend::device_alloc(size_t floats) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, sizeof(float) * floats), std::to_string(floats) + " floats");
    CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(float) * floats, stream_));
    return static_cast<float*>(p);
}
void CudaBackend::device_free(float* p) {
    if (!p) return;
    cudaStreamSynchronize(stream_);  // no throw from a destructor path
    cudaFree(p);
}
void CudaBackend::upload(float* dst, const float* src, size_t floats) {
    // From pageable memory the copy is staged before the call returns, so `src` may be reused at once.
    CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * floats, cudaMemcpyHostToDevice, stream_));
}
void CudaBackend::download(float* dst, const float* src, size_t floats) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * floats, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
}
void CudaBackend::device_copy(float* dst, const float* src, size_t floats) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * floats, cudaMemcpyDeviceToDevice, stream_));
}
void CudaBackend::device_zero(float* dst, size_t floats) {
    CUDA_CHECK(cudaMemsetAsync(dst, 0, sizeof(float) * floats, stream_));
}

size_t CudaBackend::scratch_floats(const Node& node, const Shape* in, int n_in, const Shape& out) const {
    if (node.op == Op::Conv) {
        // An asymmetrically padded input, and in backward its gradient beside it.
        const ConvParams p = conv_params(node, in[0], in[1], out);
        return static_cast<size_t>(2 * p.padded_input_floats());
    }
    if (node.op == Op::MixedPool) return static_cast<size_t>(in[0][0] * in[0][1]);  // alpha's per-plane partial sums
    return 0;
}

namespace {

// x viewed as [n, c, inner] (BatchNorm) and [outer, len, inner] around an axis (Softmax).
void nc_inner(const Shape& s, int64_t& n, int64_t& c, int64_t& inner) {
    n = s[0], c = s.rank > 1 ? s[1] : 1, inner = 1;
    for (int i = 2; i < s.rank; ++i) inner *= s[i];
}
void around_axis(const Shape& s, int64_t axis, int64_t& outer, int64_t& len, int64_t& inner) {
    outer = 1, inner = 1, len = s[axis];
    for (int i = 0; i < axis; ++i) outer *= s[i];
    for (int i = int(axis) + 1; i < s.rank; ++i) inner *= s[i];
}

}  // namespace

void CudaBackend::forward(const OpArgs& a) {
    const Node& n = a.node;
    const TensorView* in = a.in;
    const TensorView y = a.out;
    cudaStream_t s = stream_;
    switch (n.op) {
        case Op::Conv:
            conv_forward(a);
            return;
        case Op::BatchNorm: {
            int64_t N, C, inner;
            nc_inner(in[0].shape, N, C, inner);
            batchnorm_forward(s, n.attrs, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, y.data, N, C,
                              inner, a.training);
            return;
        }
        case Op::Relu:
            relu_forward(s, in[0].data, y.data, y.numel());
            return;
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::Div:
            binary_forward(s, n.op, in[0].data, in[1].data, y.data, broadcast_dims(in[0].shape, in[1].shape, y.shape));
            return;
        case Op::Pad:
            pad_forward(s, n.attrs, in[0].data, in[0].shape, y.data, y.shape);
            return;
        case Op::MaxPool:
        case Op::AvgPool:
            pool_forward(s, n.op, n.attrs, in[0].data, in[0].shape, y.data, y.shape);
            return;
        case Op::MixedPool:
            mixed_pool_forward(s, n.attrs, in[0].data, in[0].shape, in[1].data, y.data, y.shape);
            return;
        case Op::GlobalAvgPool:
            global_avg_pool_forward(s, in[0].data, y.data, in[0].shape[0] * in[0].shape[1],
                                    in[0].shape[2] * in[0].shape[3]);
            return;
        case Op::Flatten:
            if (y.data != in[0].data) copy(s, in[0].data, y.data, y.numel());
            return;
        case Op::Gemm:
            gemm_forward(a);
            return;
        case Op::Softmax: {
            int64_t outer, len, inner;
            around_axis(in[0].shape, n.attrs.axis, outer, len, inner);
            softmax_forward(s, in[0].data, y.data, outer, len, inner);
            return;
        }
        case Op::Dropout:
            dropout_forward(s, n.attrs.ratio, ref::node_seed(n, a.step_seed), in[0].data, y.data, y.numel(),
                            a.training);
            return;
        default:
            fail("cuda backend: node '" + n.name + "' (" + op_name(n.op) + ") is not implemented on cuda");
    }
}

void CudaBackend::backward(const GradArgs& g) {
    const OpArgs& a = g.fwd;
    const Node& n = a.node;
    const TensorView* in = a.in;
    TensorView* gin = g.grad_in;
    const TensorView gy = g.grad_out;
    cudaStream_t s = stream_;
    switch (n.op) {
        case Op::Conv:
            conv_backward(g);
            return;
        case Op::BatchNorm: {
            int64_t N, C, inner;
            nc_inner(in[0].shape, N, C, inner);
            batchnorm_backward(s, n.attrs, in[0].data, in[1].data, in[3].data, in[4].data, gy.data, gin[0].data,
                               gin[1].data, gin[2].data, N, C, inner, a.training);
            return;
        }
        case Op::Relu:
            if (gin[0].data) relu_backward(s, a.out.data, gy.data, gin[0].data, gy.numel());
            return;
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::Div:
            binary_backward(s, n.op, in[0].data, in[1].data, gy.data, gin[0].data, gin[1].data,
                            broadcast_dims(in[0].shape, in[1].shape, gy.shape));
            return;
        case Op::Pad:
            if (gin[0].data) pad_backward(s, n.attrs, gy.data, gy.shape, gin[0].data, gin[0].shape);
            return;
        case Op::MaxPool:
        case Op::AvgPool:
            if (gin[0].data) pool_backward(s, n.op, n.attrs, in[0].data, in[0].shape, gy.data, gy.shape, gin[0].data);
            return;
        case Op::MixedPool:
            mixed_pool_backward(s, n.attrs, in[0].data, in[0].shape, in[1].data, gy.data, gy.shape, gin[0].data,
                                gin[1].data, a.scratch);
            return;
        case Op::GlobalAvgPool:
            if (gin[0].data)
                global_avg_pool_backward(s, gy.data, gin[0].data, gin[0].shape[0] * gin[0].shape[1],
                                         gin[0].shape[2] * gin[0].shape[3]);
            return;
        case Op::Flatten:
            if (gin[0].data) accumulate(s, gy.data, gin[0].data, gy.numel());
            return;
        case Op::Gemm:
            gemm_backward(g);
            return;
        case Op::Softmax: {
            if (!gin[0].data) return;
            int64_t outer, len, inner;
            around_axis(a.out.shape, n.attrs.axis, outer, len, inner);
            softmax_backward(s, a.out.data, gy.data, gin[0].data, outer, len, inner);
            return;
        }
        case Op::Dropout:
            if (gin[0].data)
                dropout_backward(s, n.attrs.ratio, ref::node_seed(n, a.step_seed), gy.data, gin[0].data, gy.numel(),
                                 a.training);
            return;
        default:
            fail("cuda backend: node '" + n.name + "' (" + op_name(n.op) + ") has no gradient on cuda");
    }
}

}  // namespace engine::cuda
