#include <cmath>
#include <set>

#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/model.h"

namespace engine {

void check_data_fits(const Model& model, const Dataset& data, const std::string& what) {
    check(model.graph.inputs.size() == 1, what + ": the model has " + std::to_string(model.graph.inputs.size()) +
                                              " inputs; data sets feed models with one");
    const Shape& s = data.images.shape();
    const Shape want = model.input_shape(s.rank > 0 ? s[0] : 0);
    check(s == want, what + ": images " + s.str() + " do not fit the model input " + want.str());
}

Shape Model::input_shape(int64_t batch) const {
    check(!graph.inputs.empty(), "model: has no input");
    auto dims = graph.nodes[graph.inputs[0]].input_dims;
    dims[0] = batch;
    return Shape(dims);
}

void Model::set_threshold(float q) { thresholds.assign(graph.outputs.size(), q); }

void Model::validate() const {
    graph.validate();
    std::set<int> listed(graph.inputs.begin(), graph.inputs.end());
    check(listed.size() == graph.inputs.size(), "graph inputs list a node twice");
    check(!graph.inputs.empty(), "graph has no inputs");
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& n = graph.nodes[i];
        const std::string where = "node '" + n.name + "' (" + op_name(n.op) + ")";
        if (n.op == Op::Constant) {
            check(int64_t(n.value.values().size()) == n.value.numel(),
                  where + ": holds " + std::to_string(n.value.values().size()) + " values for shape " +
                      n.value.shape().str());
        } else {
            check(!n.trainable, where + ": only constants can be trainable");
        }
        if (n.op == Op::Input) {
            check(listed.count(int(i)), where + ": not listed among the graph inputs");
            check(!n.input_dims.empty() && n.input_dims.size() <= size_t(Shape::kMaxRank),
                  where + ": needs 1 to 6 declared dimensions");
            int batch_dims = 0;
            for (int64_t d : n.input_dims) {
                check(d == -1 || d >= 1, where + ": declared dimension " + std::to_string(d) + " invalid");
                batch_dims += d == -1;
            }
            check(batch_dims <= 1, where + ": more than one batch (-1) dimension");
        }
    }
    check(thresholds.size() == graph.outputs.size(),
          std::to_string(thresholds.size()) + " thresholds for " + std::to_string(graph.outputs.size()) + " exits");
    for (float q : thresholds) check(!std::isnan(q), "threshold is NaN");
    // Every exit must produce logits, one row per sample.
    std::vector<Shape> shapes = graph.infer_shapes(1);
    for (size_t k = 0; k < graph.outputs.size(); ++k) {
        const Shape& s = shapes[graph.outputs[k]];
        check(s.rank == 2 && s[0] == 1 && s[1] >= 1, "exit " + std::to_string(k) + " ('" +
                                                         graph.nodes[graph.outputs[k]].name + "') gives " + s.str() +
                                                         " at batch 1, not [1,classes] logits");
    }
}

}  // namespace engine
