// make_backend: the one list of backends this build holds.
#include "engine/backend.h"
#include "engine/config.h"
#include "engine/error.h"
#include "native/native_backend.h"
#include "ref/ref_kernels.h"
#ifdef ENGINE_WITH_ONEDNN
#include "onednn/onednn_backend.h"
#endif
#ifdef ENGINE_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif
#ifdef ENGINE_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace engine {

std::string default_backend_name() { return "native"; }

std::vector<std::string> backend_names() {
    std::vector<std::string> names{"ref", "native"};
#ifdef ENGINE_WITH_ONEDNN
    names.push_back("onednn");
#endif
#ifdef ENGINE_WITH_CUDA
    names.push_back("cuda");
#endif
    return names;
}

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
    check(threads >= 0, "backend '" + name + "': thread count must not be negative");
    if (name == "ref") return std::make_unique<ref::RefBackend>();
    if (name == "native" || name == "cpu") return std::make_unique<native::NativeBackend>(threads);  // "cpu": old name
#ifdef ENGINE_WITH_ONEDNN
    if (name == "onednn") return std::make_unique<onednn::OnednnBackend>(threads);
#endif
#ifdef ENGINE_WITH_CUDA
    if (name == "cuda") return std::make_unique<cuda::CudaBackend>();  // throws without a device
#endif
    std::string known;
    for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
    fail("backend '" + name + "': unknown (available in this build: " + known + ")");
}

}  // namespace engine
