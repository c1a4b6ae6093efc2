// A model: a graph whose outputs are exits, plus the early-exit policy and free-form metadata.
#pragma once
#include "engine/api.h"
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace engine {

struct Dataset;

struct ENGINE_API Model {
    Graph graph;
    // thresholds[k]: exit k fires when its maximum softmax probability >= thresholds[k].
    // The final exit always fires, whatever its entry says.
    std::vector<float> thresholds;
    std::map<std::string, std::string> metadata;  // arch, training command, ...

    int num_exits() const { return static_cast<int>(graph.outputs.size()); }
    // The shape of the (first) input at `batch` samples: its declared dims with the batch set.
    Shape input_shape(int64_t batch = 1) const;
    void set_threshold(float q);  // the same q for every exit
    void validate() const;
};

// Loads a native model file or an .onnx file, chosen by content (ONNX has no magic; we try native first).
ENGINE_API Model load_model(const std::string& path);
// The format a model file holds, judged by its content (and an .onnx name); throws naming the
// path when it is neither.
enum class ModelFormat { Native, Onnx };
ENGINE_API ModelFormat model_file_format(const std::string& path);
// Reads the native format (load_model reads either).
ENGINE_API Model load_native_model(const std::string& path);
// Writes the native format atomically (temporary file, then rename).
ENGINE_API void save_model(const Model& model, const std::string& path);

// Throws "<what>: images [N, C, H, W] do not fit the model input [...]" unless every image has
// the shape of the model's (single) input past its batch dimension.
ENGINE_API void check_data_fits(const Model& model, const Dataset& data, const std::string& what);

// Content hash of the model's graph and weights (hex sha256), for fingerprints and manifests.
ENGINE_API std::string model_hash(const Model& model);

}  // namespace engine
