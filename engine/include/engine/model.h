// A model: a graph whose outputs are exits, plus the early-exit policy and free-form metadata.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace engine {

struct Dataset;

struct Model {
    Graph graph;
    // thresholds[k]: exit k fires when its maximum softmax probability >= thresholds[k].
    // The final exit always fires, whatever its entry says.
    std::vector<float> thresholds;
    std::map<std::string, std::string> metadata;  // arch, training command, ...

    int num_exits() const { return static_cast<int>(graph.outputs.size()); }
    void set_threshold(float q);  // the same q for every exit
    void validate() const;
};

// Loads a native model file or an .onnx file, chosen by content (ONNX has no magic; we try native first).
Model load_model(const std::string& path);
// Writes the native format atomically (temporary file, then rename).
void save_model(const Model& model, const std::string& path);

// Throws "<what>: images [N, C, H, W] do not fit the model input [...]" unless every image has
// the shape of the model's (single) input past its batch dimension.
void check_data_fits(const Model& model, const Dataset& data, const std::string& what);

// Content hash of the model's graph and weights (hex sha256), for fingerprints and manifests.
std::string model_hash(const Model& model);

}  // namespace engine
