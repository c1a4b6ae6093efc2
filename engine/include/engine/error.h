// One error type for the whole library: a message that already names its context
// (file, node, shapes). Tools catch it at the boundary and print one line.
#pragma once
#include "engine/api.h"
#include <stdexcept>
#include <string>

namespace engine {

struct ENGINE_API Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] ENGINE_API void fail(const std::string& message);

// check(cond, "what went wrong") throws Error when cond is false. A message built by
// concatenation is built on every call: on hot paths write `if (!cond) fail(...)` instead.
inline void check(bool condition, const std::string& message) {
    if (!condition) fail(message);
}
inline void check(bool condition, const char* message) {  // literals: nothing built unless it fails
    if (!condition) fail(message);
}

}  // namespace engine
