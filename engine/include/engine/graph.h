// The graph IR: a list of nodes in topological order. Node i produces value i.
// Backends dispatch on Node::op; attributes live in one flat struct (Darknet-style)
// so that a node is plain data that serialises to JSON without per-op classes.
#pragma once
#include <string>
#include <vector>

#include "engine/api.h"
#include "engine/tensor.h"

namespace engine {

enum class Op {
    Input,      // a graph input; Node::input_dims holds its declared shape
    Constant,   // a weight or fixed tensor; Node::value holds it
    Conv,       // inputs: x, w[, b]; 2-D, groups, stride, padding, dilation
    BatchNorm,  // inputs: x, scale, bias, mean, var
    Relu,
    Add,
    Sub,
    Mul,
    Div,  // numpy broadcasting
    Pad,  // constant mode; attrs.pads = begin per dim, then end per dim
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    Flatten,    // to 2-D at attrs.axis
    Gemm,       // inputs: a, b[, c]; alpha*op(a)*op(b) + beta*c
    Softmax,    // along attrs.axis
    MixedPool,  // SDN head: inputs x, alpha (scalar); alpha*maxpool + (1-alpha)*avgpool
    Dropout,    // identity at inference; attrs.ratio in training
    Count
};

ENGINE_API const char* op_name(Op op);
// Returns Op::Count when the name is not an op.
ENGINE_API Op op_from_name(const std::string& name);

struct ENGINE_API Attrs {
    int64_t kernel[2] = {1, 1};
    int64_t stride[2] = {1, 1};
    int64_t pad[4] = {0, 0, 0, 0};  // top, left, bottom, right
    int64_t dilation[2] = {1, 1};
    int64_t groups = 1;
    bool ceil_mode = false;
    bool count_include_pad = false;
    float epsilon = 1e-5f;            // BatchNorm
    float momentum = 0.1f;            // BatchNorm running-statistics update in training
    float alpha = 1.0f, beta = 1.0f;  // Gemm
    bool trans_a = false, trans_b = false;
    int64_t axis = 1;           // Flatten, Softmax
    std::vector<int64_t> pads;  // Pad
    float pad_value = 0.0f;
    float ratio = 0.0f;  // Dropout
    // Epilogues, set only by the fusion passes inside a Plan (never in model files):
    bool fused_residual = false;  // Conv, BatchNorm: the last input is added to the node's output
    bool fused_relu = false;      // Conv: ReLU after bias and residual; BatchNorm, Add: ReLU after it
};

struct ENGINE_API Node {
    Op op = Op::Constant;
    std::string name;
    std::vector<int> inputs;
    Attrs attrs;
    Tensor value;                     // Constant only
    std::vector<int64_t> input_dims;  // Input only: declared shape; -1 marks the batch dimension
    bool trainable = false;           // Constant only: a parameter that training updates
};

struct ENGINE_API Graph {
    std::vector<Node> nodes;
    std::vector<int> inputs;   // Input nodes, in order
    std::vector<int> outputs;  // exits, in order of depth (the last is the final classifier)
    std::vector<std::string> output_names;

    int add(Node node);  // appends, returns its index
    int add_constant(const std::string& name, Tensor value, bool trainable);
    int add_op(Op op, const std::string& name, std::vector<int> inputs, Attrs attrs = {});
    int find(const std::string& name) const;  // -1 if absent
    bool is_constant(int i) const { return nodes[i].op == Op::Constant; }
    // Per node, how many input slots read it (graph outputs not counted).
    std::vector<int> consumer_counts() const;
    // Output shapes of every node for a given batch size; throws naming the node on a mismatch.
    std::vector<Shape> infer_shapes(int64_t batch) const;
    // Checks indices, ordering and attributes; throws naming the first bad node.
    void validate() const;
};

// Shape of a node's output from its inputs' shapes; throws naming the node on a mismatch.
ENGINE_API Shape infer_shape(const Node& node, const std::vector<Shape>& in);

// Multiply-adds of one node for one sample (convolutions and matrix products; zero for the rest).
ENGINE_API int64_t node_macs(const Node& node, const std::vector<Shape>& in, const Shape& out);

// The graph cut at its exits, written once: segment k lists, in topological order, the op nodes
// (not Constants or Inputs) that exit k needs and earlier exits did not compute. `nodes` is the
// graph's node list, or a plan's, where fused replacements read other inputs.
ENGINE_API std::vector<std::vector<int>> exit_segments(const std::vector<const Node*>& nodes,
                                                       const std::vector<int>& outputs);
ENGINE_API std::vector<std::vector<int>> exit_segments(const Graph& graph);

// Multiply-adds per sample from the input to each exit, cumulative over the segments (each exit's
// head counts towards every later exit), from shapes at batch 1.
ENGINE_API std::vector<int64_t> exit_macs(const std::vector<const Node*>& nodes,
                                          const std::vector<std::vector<int>>& segments,
                                          const std::vector<Shape>& shapes);
ENGINE_API std::vector<int64_t> exit_macs(const Graph& graph);

// Number of trainable scalars.
ENGINE_API int64_t count_parameters(const Graph& graph);

}  // namespace engine
