#include "engine/hash.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/error.h"

namespace engine {

struct Sha256::Ctx {
    EVP_MD_CTX* md = nullptr;
    ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
    ctx_->md = EVP_MD_CTX_new();
    check(ctx_->md && EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1, "sha256: OpenSSL init failed");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t n) {
    check(EVP_DigestUpdate(ctx_->md, data, n) == 1, "sha256: OpenSSL update failed");
}

std::string Sha256::hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    check(EVP_DigestFinal_ex(ctx_->md, digest, &len) == 1, "sha256: OpenSSL final failed");
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 15];
    }
    return out;
}

std::string sha256_hex(const void* data, size_t n) {
    Sha256 h;
    h.update(data, n);
    return h.hex();
}

std::string sha256_file(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail(path + ": no such file");
    if (!std::filesystem::is_regular_file(path, ec)) fail(path + ": not a regular file");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path + ": cannot open (" + std::strerror(errno) + ")");
    Sha256 h;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        h.update(buf.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) fail(path + ": read failed");
    return h.hex();
}

}  // namespace engine
