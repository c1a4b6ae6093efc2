// libFuzzer target for the file loaders: whatever the bytes, load_model and read_safetensors
// must either succeed or throw engine::Error. Any other exception, crash or sanitizer report
// is a bug. The loaders take paths, so each input goes through a temporary file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/safetensors.h"

namespace {

std::string temp_path() {
    const char* dir = std::getenv("TMPDIR");
    std::string d = dir && *dir ? dir : "/tmp";
    return d + "/fuzz_model_loader." + std::to_string(::getpid()) + ".bin";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = temp_path();
    // A new file each time: truncating one with data makes ext4 flush it on close (auto_da_alloc).
    ::unlink(path.c_str());
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    try {
        engine::Model m = engine::load_model(path);
        (void)engine::model_hash(m);
    } catch (const engine::Error&) {}
    try {
        (void)engine::read_safetensors(path);
    } catch (const engine::Error&) {}
    return 0;
}
