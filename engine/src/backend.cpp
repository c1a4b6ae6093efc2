#include "engine/backend.h"

#include "cpu/cpu_backend.h"
#include "engine/error.h"
#include "ref/ref_kernels.h"
#ifdef ENGINE_WITH_ONEDNN
#include "onednn/onednn_backend.h"
#endif

namespace engine {

size_t Backend::scratch_floats(const Node&, const Shape*, int, const Shape&) const { return 0; }
void Backend::prepare(const Node&, const Shape*, int, const Shape&) {}

std::string default_backend_name() { return "native"; }

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
    check(threads >= 0, "backend '" + name + "': thread count must not be negative");
    if (name == "ref") return std::make_unique<ref::RefBackend>();
    if (name == "native" || name == "cpu") return std::make_unique<cpu::CpuBackend>(threads);  // "cpu": old name
#ifdef ENGINE_WITH_ONEDNN
    if (name == "onednn") return std::make_unique<onednn::OnednnBackend>(threads);
    fail("backend '" + name + "': unknown (available: ref, native, onednn)");
#else
    fail("backend '" + name + "': unknown (available: ref, native; onednn needs a build with ENGINE_WITH_ONEDNN)");
#endif
}

}  // namespace engine
