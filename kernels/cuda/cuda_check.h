// Error checks for CUDA runtime, cuDNN and cuBLAS calls: a failure throws engine::Error naming the
// call, its file and line, the library's own message and, where the caller gives one, the node.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "engine/error.h"

namespace engine::cuda {

[[noreturn]] void fail_call(const char* lib, const char* call, const char* message, const char* file, int line,
                            const std::string& context);

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line, const std::string& context = {}) {
    if (e != cudaSuccess) fail_call("CUDA", call, cudaGetErrorString(e), file, line, context);
}
inline void check_cudnn(cudnnStatus_t e, const char* call, const char* file, int line,
                        const std::string& context = {}) {
    if (e != CUDNN_STATUS_SUCCESS) fail_call("cuDNN", call, cudnnGetErrorString(e), file, line, context);
}
const char* cublas_status_name(cublasStatus_t e);
inline void check_cublas(cublasStatus_t e, const char* call, const char* file, int line,
                         const std::string& context = {}) {
    if (e != CUBLAS_STATUS_SUCCESS) fail_call("cuBLAS", call, cublas_status_name(e), file, line, context);
}

}  // namespace engine::cuda

// CUDA_CHECK(call) or CUDA_CHECK(call, "node 'x'"); the same for CUDNN_CHECK and CUBLAS_CHECK.
#define CUDA_CHECK(call, ...) ::engine::cuda::check_cuda((call), #call, __FILE__, __LINE__, ##__VA_ARGS__)
#define CUDNN_CHECK(call, ...) ::engine::cuda::check_cudnn((call), #call, __FILE__, __LINE__, ##__VA_ARGS__)
#define CUBLAS_CHECK(call, ...) ::engine::cuda::check_cublas((call), #call, __FILE__, __LINE__, ##__VA_ARGS__)
// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define CUDA_CHECK_LAUNCH(what) ::engine::cuda::check_cuda(cudaGetLastError(), what, __FILE__, __LINE__)
