#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/error.h"

namespace engine {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using nlohmann::json;

// The reference implementation's limit; also bounds what a corrupt length can make us allocate.
constexpr uint64_t kMaxHeader = 100u << 20;

struct Entry {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
};

struct Header {
    uint64_t data_start = 0;  // file offset of the data section
    std::vector<Entry> entries;
    std::map<std::string, std::string> metadata;
};

size_t dtype_size(const std::string& d) {
    if (d == "F64" || d == "I64") return 8;
    if (d == "F32" || d == "I32") return 4;
    if (d == "F16" || d == "BF16" || d == "I16") return 2;
    if (d == "I8" || d == "U8" || d == "BOOL") return 1;
    return 0;
}

float half_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal: renormalise
        int e = -1;
        do {
            ++e;
            mant <<= 1;
        } while (!(mant & 0x400));
        bits = sign | uint32_t(112 - e) << 23 | ((mant & 0x3ff) << 13);
    }
    return std::bit_cast<float>(bits);
}

template <class T>
void convert(const char* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, src + i * sizeof(T), sizeof(T));
        dst[i] = static_cast<float>(v);
    }
}

void to_float(const std::string& dtype, const char* src, float* dst, int64_t n) {
    if (dtype == "F64") return convert<double>(src, dst, n);
    if (dtype == "I64") return convert<int64_t>(src, dst, n);
    if (dtype == "I32") return convert<int32_t>(src, dst, n);
    if (dtype == "I16") return convert<int16_t>(src, dst, n);
    if (dtype == "I8") return convert<int8_t>(src, dst, n);
    if (dtype == "U8" || dtype == "BOOL") return convert<uint8_t>(src, dst, n);
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = dtype == "F16" ? half_to_float(h) : std::bit_cast<float>(uint32_t(h) << 16);
    }
}

std::ifstream open_input(const std::string& path, uint64_t& size) {
    std::error_code ec;
    auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) fail(path + ": no such file");
    if (!std::filesystem::is_regular_file(status)) fail(path + ": not a regular file");
    size = std::filesystem::file_size(path, ec);
    if (ec) fail(path + ": cannot read size (" + ec.message() + ")");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path + ": cannot open (" + std::strerror(errno) + ")");
    return in;
}

void read_exact(std::ifstream& in, char* dst, uint64_t n, uint64_t at, const std::string& path) {
    in.seekg(static_cast<std::streamoff>(at));
    in.read(dst, static_cast<std::streamsize>(n));
    if (!in || static_cast<uint64_t>(in.gcount()) != n)
        fail(path + ": read failed at offset " + std::to_string(at) + " (file changed while reading?)");
}

Entry parse_entry(const std::string& name, const json& j, const std::string& path) {
    const std::string where = path + ": tensor '" + name + "': ";
    check(j.is_object(), where + "entry is not a JSON object");
    Entry e;
    e.name = name;
    auto dtype = j.find("dtype");
    check(dtype != j.end() && dtype->is_string(), where + "missing string \"dtype\"");
    e.dtype = dtype->get<std::string>();
    check(dtype_size(e.dtype) != 0, where + "unsupported dtype '" + e.dtype + "'");
    auto shape = j.find("shape");
    check(shape != j.end() && shape->is_array(), where + "missing array \"shape\"");
    check(shape->size() <= Shape::kMaxRank,
          where + "rank " + std::to_string(shape->size()) + " exceeds " + std::to_string(Shape::kMaxRank));
    for (const json& d : *shape) {
        check(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(INT64_MAX),
              where + "shape entries must be non-negative integers");
        e.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    auto off = j.find("data_offsets");
    check(off != j.end() && off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
              (*off)[1].is_number_unsigned(),
          where + "\"data_offsets\" must be two non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    check(e.begin <= e.end, where + "data_offsets decrease");
    uint64_t bytes = dtype_size(e.dtype);
    for (int64_t d : e.shape) check(!__builtin_mul_overflow(bytes, uint64_t(d), &bytes), where + "shape too large");
    check(bytes == e.end - e.begin, where + "shape and dtype need " + std::to_string(bytes) + " bytes, offsets give " +
                                        std::to_string(e.end - e.begin));
    return e;
}

Header read_header(std::ifstream& in, uint64_t file_size, const std::string& path) {
    check(file_size >= 8, path + ": too short for a safetensors file (" + std::to_string(file_size) + " bytes)");
    unsigned char len_bytes[8];
    read_exact(in, reinterpret_cast<char*>(len_bytes), 8, 0, path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
    check(n <= file_size - 8, path + ": header length " + std::to_string(n) + " exceeds the file size " +
                                  std::to_string(file_size) + " (truncated?)");
    check(n <= kMaxHeader, path + ": header length " + std::to_string(n) + " exceeds the 100 MB limit");
    std::string text(n, '\0');
    read_exact(in, text.data(), n, 8, path);
    check(n > 0 && text[0] == '{', path + ": header does not start with '{'");

    json j = json::parse(text, nullptr, false);
    check(!j.is_discarded(), path + ": header is not valid JSON");
    check(j.is_object(), path + ": header is not a JSON object");
    Header h;
    h.data_start = 8 + n;
    for (const auto& [key, value] : j.items()) {
        if (key == "__metadata__") {
            check(value.is_object(), path + ": __metadata__ is not a JSON object");
            for (const auto& [mk, mv] : value.items()) {
                check(mv.is_string(), path + ": __metadata__ value of '" + mk + "' is not a string");
                h.metadata[mk] = mv.get<std::string>();
            }
        } else {
            h.entries.push_back(parse_entry(key, value, path));
        }
    }
    // Like the reference implementation: tensors tile the data section exactly, with no
    // overlap and no gap, so every byte of the file is accounted for.
    std::vector<const Entry*> by_offset;
    for (const Entry& e : h.entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t at = 0, data_size = file_size - h.data_start;
    for (const Entry* e : by_offset) {
        check(e->begin == at, path + ": tensor '" + e->name + "': data_offsets [" + std::to_string(e->begin) + "," +
                                  std::to_string(e->end) + "] " + (e->begin < at ? "overlap" : "leave a gap after") +
                                  " the previous tensor");
        check(e->end <= data_size, path + ": tensor '" + e->name + "': data_offsets end " + std::to_string(e->end) +
                                       " beyond the data section of " + std::to_string(data_size) +
                                       " bytes (truncated?)");
        at = e->end;
    }
    check(at == data_size, path + ": " + std::to_string(data_size - at) + " bytes after the last tensor");
    return h;
}

}  // namespace

std::map<std::string, Tensor> read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
    uint64_t size = 0;
    std::ifstream in = open_input(path, size);
    Header h = read_header(in, size, path);
    std::map<std::string, Tensor> out;
    std::vector<char> raw;
    for (const Entry& e : h.entries) {
        Tensor t{Shape(e.shape)};
        uint64_t bytes = e.end - e.begin;
        if (e.dtype == "F32") {
            read_exact(in, reinterpret_cast<char*>(t.data()), bytes, h.data_start + e.begin, path);
        } else {
            raw.resize(bytes);
            read_exact(in, raw.data(), bytes, h.data_start + e.begin, path);
            to_float(e.dtype, raw.data(), t.data(), t.numel());
        }
        out.emplace(e.name, std::move(t));
    }
    if (metadata) *metadata = std::move(h.metadata);
    return out;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
    uint64_t size = 0;
    std::ifstream in = open_input(path, size);
    return read_header(in, size, path).metadata;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    json header = json::object();
    uint64_t at = 0;
    for (const auto& [name, t] : tensors) {
        check(t != nullptr, path + ": tensor '" + name + "' is null");
        check(name != "__metadata__", path + ": '__metadata__' is not a valid tensor name");
        check(!header.contains(name), path + ": duplicate tensor name '" + name + "'");
        check(static_cast<int64_t>(t->values().size()) == t->numel(), path + ": tensor '" + name + "' has " +
                                                                          std::to_string(t->values().size()) +
                                                                          " values for shape " + t->shape().str());
        uint64_t bytes = uint64_t(t->numel()) * sizeof(float);
        header[name] = {{"dtype", "F32"}, {"shape", t->shape().vec()}, {"data_offsets", {at, at + bytes}}};
        at += bytes;
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::string text;
    try {
        text = header.dump();
    } catch (const json::exception& e) {  // invalid UTF-8 in a name or value
        fail(path + ": cannot encode header (" + e.what() + ")");
    }
    // Pad with spaces so the data section starts 8-byte aligned (allowed by the format).
    text.append((8 - text.size() % 8) % 8, ' ');
    write_file_atomically(path, [&](std::ostream& out) {
        unsigned char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
        out.write(reinterpret_cast<const char*>(len), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const auto& [name, t] : tensors)
            out.write(reinterpret_cast<const char*>(t->data()),
                      static_cast<std::streamsize>(t->numel() * sizeof(float)));
    });
}

}  // namespace engine
