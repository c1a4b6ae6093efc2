#include "engine/backend.h"

#include <cstring>

#include "cpu/cpu_backend.h"
#include "engine/error.h"
#include "ref/ref_kernels.h"
#ifdef ENGINE_WITH_ONEDNN
#include "onednn/onednn_backend.h"
#endif
#ifdef ENGINE_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace engine {

size_t Backend::scratch_floats(const Node&, const Shape*, int, const Shape&) const { return 0; }
void Backend::prepare(const Node&, const Shape*, int, const Shape&) {}

// Host defaults of the device-memory hooks: a Plan never calls them unless device_memory() is true.
float* Backend::device_alloc(size_t) { fail("backend '" + name() + "' keeps its data in host memory"); }
void Backend::device_free(float*) {}
void Backend::upload(float* dst, const float* src, size_t floats) { std::memcpy(dst, src, sizeof(float) * floats); }
void Backend::download(float* dst, const float* src, size_t floats) { std::memcpy(dst, src, sizeof(float) * floats); }
void Backend::device_copy(float* dst, const float* src, size_t floats) { std::memmove(dst, src, sizeof(float) * floats); }
void Backend::device_zero(float* dst, size_t floats) { std::memset(dst, 0, sizeof(float) * floats); }

std::string default_backend_name() { return "native"; }

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
    check(threads >= 0, "backend '" + name + "': thread count must not be negative");
    if (name == "ref") return std::make_unique<ref::RefBackend>();
    if (name == "native" || name == "cpu") return std::make_unique<cpu::CpuBackend>(threads);  // "cpu": old name
#ifdef ENGINE_WITH_ONEDNN
    if (name == "onednn") return std::make_unique<onednn::OnednnBackend>(threads);
#endif
#ifdef ENGINE_WITH_CUDA
    if (name == "cuda") return std::make_unique<cuda::CudaBackend>();  // throws without a device
#endif
    std::string available = "ref, native";
#ifdef ENGINE_WITH_ONEDNN
    available += ", onednn";
#endif
#ifdef ENGINE_WITH_CUDA
    available += ", cuda";
#endif
    fail("backend '" + name + "': unknown (available: " + available +
         "; onednn and cuda need builds with ENGINE_WITH_ONEDNN and ENGINE_WITH_CUDA)");
}

}  // namespace engine
