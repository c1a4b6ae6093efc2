#include "engine/backend.h"

namespace engine {

size_t Backend::scratch_floats(const Node&, const Shape*, int, const Shape&) const { return 0; }
void Backend::prepare(const Node&, const Shape*, int, const Shape&) {}

}  // namespace engine
