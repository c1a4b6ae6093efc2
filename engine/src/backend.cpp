#include "engine/backend.h"

#include "cpu/cpu_backend.h"
#include "engine/error.h"
#include "ref/ref_kernels.h"

namespace engine {

size_t Backend::scratch_floats(const Node&, const Shape*, int, const Shape&) const { return 0; }
void Backend::prepare(const Node&, const Shape*, int, const Shape&) {}

std::string default_backend_name() { return "cpu"; }

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
    check(threads >= 0, "backend '" + name + "': thread count must not be negative");
    if (name == "ref") return std::make_unique<ref::RefBackend>();
    if (name == "cpu") return std::make_unique<cpu::CpuBackend>(threads);
    fail("backend '" + name + "': unknown (available: ref, cpu)");
}

}  // namespace engine
