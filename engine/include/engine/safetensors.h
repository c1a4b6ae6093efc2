// safetensors files (https://github.com/huggingface/safetensors): 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {..}},
// then the raw little-endian data. Used for model weights, native models and fingerprint sets.
#pragma once
#include "engine/api.h"
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace engine {

// Reads every tensor as float32 (F32 as is; F64, F16, BF16, I64, I32, I16, I8, U8 and BOOL
// converted). Validates the whole file first (header length, JSON, dtypes, shapes, offsets in
// range, contiguous and consistent with the shapes); any problem throws "<path>: <problem>".
// metadata, when given, receives "__metadata__" (empty if the file has none).
ENGINE_API std::map<std::string, Tensor> read_safetensors(const std::string& path,
                                                          std::map<std::string, std::string>* metadata = nullptr);

// Only the header's "__metadata__", without reading the data (still validates the header).
ENGINE_API std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

// Writes F32 tensors in the given order, atomically. Names must be unique and not "__metadata__".
ENGINE_API void write_safetensors(const std::string& path,
                                  const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                                  const std::map<std::string, std::string>& metadata);

}  // namespace engine
