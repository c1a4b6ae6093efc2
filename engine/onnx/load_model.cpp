// load_model: the one entry point for model files, native or ONNX, chosen by content.
#include "engine/config.h"
#include "engine/error.h"
#include "engine/model.h"
#ifdef ENGINE_WITH_ONNX
#include "engine/onnx_import.h"
#endif

namespace engine {

Model load_model(const std::string& path) {
    if (model_file_format(path) == ModelFormat::Native) return load_native_model(path);
#ifdef ENGINE_WITH_ONNX
    Model m = import_onnx(path);
    try {
        m.validate();
    } catch (const Error& e) {
        fail(path + ": imported model invalid: " + e.what());
    }
    return m;
#else
    fail(path + ": looks like ONNX, but this build has no ONNX import (ENGINE_WITH_ONNX=OFF)");
#endif
}

}  // namespace engine
