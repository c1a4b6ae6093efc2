#include "engine/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"

namespace engine {

namespace {

// fsync through a second descriptor: std::ofstream does not expose its own.
bool sync_path(const std::string& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::fsync(fd) == 0;
    return ::close(fd) == 0 && ok;
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& body) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    try {
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            if (!out) fail(path + ": cannot create " + tmp + " (" + std::strerror(errno) + ")");
            body(out);
            out.flush();
            if (!out) fail(path + ": write failed (" + std::strerror(errno) + ")");
            out.close();
            if (out.fail()) fail(path + ": write failed on close (" + std::strerror(errno) + ")");
        }
        if (!sync_path(tmp, O_RDONLY)) fail(path + ": fsync failed (" + std::strerror(errno) + ")");
        if (std::rename(tmp.c_str(), path.c_str()) != 0)
            fail(path + ": cannot rename " + tmp + " over it (" + std::strerror(errno) + ")");
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw;
    }
    // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    sync_path(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace engine
