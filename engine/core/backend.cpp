#include "engine/backend.h"

#include <cstring>

#include "engine/error.h"

namespace engine {

size_t Backend::scratch_floats(const Node&, const Shape*, int, const Shape&) const { return 0; }
void Backend::prepare(const Node&, const Shape*, int, const Shape&) {}

// Host defaults of the device-memory hooks: a Plan never calls them unless device_memory() is true.
float* Backend::device_alloc(size_t) { fail("backend '" + name() + "' keeps its data in host memory"); }
void Backend::device_free(float*) {}
void Backend::upload(float* dst, const float* src, size_t floats) { std::memcpy(dst, src, sizeof(float) * floats); }
void Backend::download(float* dst, const float* src, size_t floats) { std::memcpy(dst, src, sizeof(float) * floats); }
void Backend::device_copy(float* dst, const float* src, size_t floats) {
    std::memmove(dst, src, sizeof(float) * floats);
}
void Backend::device_zero(float* dst, size_t floats) { std::memset(dst, 0, sizeof(float) * floats); }

}  // namespace engine
