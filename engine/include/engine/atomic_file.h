// Every file the project writes goes through here, so that a crash, a full disk or an
// exception half-way leaves either the old file or the new one, never a half file.
#pragma once
#include "engine/api.h"
#include <functional>
#include <ostream>
#include <string>

namespace engine {

// Runs body on a stream to "<path>.tmp.<pid>", flushes and fsyncs it, then renames it over
// path. On any failure (body throws, the stream goes bad, rename fails) the temporary file
// is removed and an Error naming path is thrown (exceptions from body pass through unchanged).
ENGINE_API void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& body);

}  // namespace engine
