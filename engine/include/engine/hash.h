// SHA-256 (OpenSSL libcrypto), as lowercase hex: model hashes and weight manifests.
#pragma once
#include "engine/api.h"
#include <cstddef>
#include <memory>
#include <string>

namespace engine {

ENGINE_API std::string sha256_hex(const void* data, size_t n);
ENGINE_API std::string sha256_file(const std::string& path);  // throws "<path>: ..." when unreadable

// Incremental hashing, for digests over several pieces without concatenating them.
class ENGINE_API Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, size_t n);
    void update(const std::string& s) { update(s.data(), s.size()); }
    std::string hex();  // finishes; the object must not be updated afterwards

private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

}  // namespace engine
