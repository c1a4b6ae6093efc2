// ONNX import: turns a ModelProto (opset 1 to 17, default domain) into an engine Model.
// Supported operators: Conv (2-D), BatchNormalization (inference), Relu, Add, Sub, Mul, Div,
// Pad (constant mode), MaxPool, AveragePool (2-D), GlobalAveragePool, Flatten, Gemm, Softmax,
// Dropout (inference), Identity, Constant. Every attribute of a supported operator is either
// honoured or refused: an import either computes what the file says or throws an Error that
// names the file, the node and the operator or attribute it cannot represent. SDN heads,
// alpha*MaxPool + (1-alpha)*AvgPool, are imported as one MixedPool with a single trainable alpha.
#pragma once
#include "engine/api.h"
#include <map>
#include <string>

#include "engine/model.h"

namespace engine {

// Graph inputs that are not initializers become Input nodes (a symbolic or unknown first
// dimension becomes -1, the batch). An input named in `bind` becomes a Constant with that value
// instead: tensors the model takes as data but this engine needs at import time (Pad's `pads`,
// Dropout's `ratio`) or weights given as inputs. Integer inputs may be bound as floats holding
// integral values. Graph outputs become the exits, in order, each with threshold 0.9.
ENGINE_API Model import_onnx(const std::string& path, const std::map<std::string, Tensor>& bind = {});

}  // namespace engine
