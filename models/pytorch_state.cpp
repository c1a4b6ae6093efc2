// Loading a PyTorch SDN state dict by name. The safetensors keys are sorted alphabetically
// ("0.ic.alpha" before "0.layers.0.mean", "10" before "2"), so their order says nothing about
// the module order; the builders instead name every constant after the PyTorch module tree
// ("segs." + key), which makes the mapping exact.
#include <set>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "engine/model_zoo.h"

namespace engine {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void load_pytorch_state(Model& model, const std::string& path) {
    std::map<std::string, std::string> meta;
    auto tensors = read_safetensors(path, &meta);
    if (meta.count("arch")) {  // stored as a JSON string: "\"resnet56\""
        std::string arch = meta["arch"];
        if (arch.size() >= 2 && arch.front() == '"' && arch.back() == '"') arch = arch.substr(1, arch.size() - 2);
        check(arch == model.metadata["arch"],
              path + ": holds a '" + arch + "' state dict, the model is '" + model.metadata["arch"] + "'");
    }
    Graph& g = model.graph;
    std::set<int> assigned;
    for (auto& [key, value] : tensors) {
        if (ends_with(key, "num_batches_tracked")) continue;
        int node = g.find(key);
        if (node < 0) node = g.find("segs." + key);
        check(node >= 0 && g.nodes[node].op == Op::Constant,
              path + ": tensor '" + key + "' matches no parameter of the " + model.metadata["arch"] + " model");
        Node& n = g.nodes[node];
        check(n.value.shape() == value.shape(), path + ": tensor '" + key + "' has shape " + value.shape().str() +
                                                    ", the model's '" + n.name + "' has " + n.value.shape().str());
        n.value = std::move(value);
        assigned.insert(node);
    }
    for (size_t i = 0; i < g.nodes.size(); ++i)
        check(g.nodes[i].op != Op::Constant || assigned.count(static_cast<int>(i)),
              path + ": no tensor for the model's '" + g.nodes[i].name + "'");
    model.metadata["weights"] = path;
    for (const char* k : {"per_exit_acc", "train"})
        if (meta.count(k)) model.metadata["pytorch_" + std::string(k)] = meta[k];
}

}  // namespace engine
