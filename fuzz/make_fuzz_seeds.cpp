// Writes the seed corpus for fuzz_model_loader into a directory: a small native model, a plain
// safetensors weights file, and a safetensors file using every dtype the reader converts.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "tiny_model.h"

namespace {

void write_mixed_dtypes(const std::string& path) {
    // name, dtype, element size, shape
    struct T {
        const char* name;
        const char* dtype;
        size_t size;
        std::vector<int64_t> shape;
    };
    const std::vector<T> tensors = {{"f64", "F64", 8, {2}},   {"f16", "F16", 2, {2, 2}},  {"bf16", "BF16", 2, {3}},
                                    {"i64", "I64", 8, {1}},   {"i32", "I32", 4, {2}},     {"i16", "I16", 2, {1}},
                                    {"i8", "I8", 1, {2}},     {"u8", "U8", 1, {3}},       {"bool", "BOOL", 1, {1}},
                                    {"scalar", "F32", 4, {}}, {"empty", "F32", 4, {0, 3}}};
    nlohmann::json header = {{"__metadata__", {{"note", "fuzz seed"}}}};
    std::string data;
    for (const T& t : tensors) {
        size_t n = t.size;
        for (int64_t d : t.shape) n *= size_t(d);
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + n}}};
        for (size_t i = 0; i < n; ++i) data += char(i * 37 + 11);
    }
    std::string text = header.dump();
    std::ofstream out(path, std::ios::binary);
    uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << text << data;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    try {
        std::filesystem::create_directories(dir);
        engine::Model m = test::tiny_model(7, 4, 3);
        engine::save_model(m, dir + "/native_model.safetensors");
        engine::Tensor a = m.graph.nodes[m.graph.find("conv1.bias")].value;
        engine::Tensor b({2, 2}, {1, 2, 3, 4});
        engine::write_safetensors(dir + "/weights.safetensors", {{"a", &a}, {"b", &b}}, {{"arch", "seed"}});
        write_mixed_dtypes(dir + "/mixed_dtypes.safetensors");
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
