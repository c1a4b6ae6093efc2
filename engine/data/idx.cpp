// IDX files (http://yann.lecun.com/exdb/mnist/): big-endian magic and dimensions, then bytes.
// zlib's gz* functions read gzipped and plain files alike.
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "engine/dataset.h"
#include "engine/error.h"

namespace engine {

namespace {

struct GzCloser {
    void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

GzFile open_gz(const std::string& path) {
    std::error_code ec;
    check(std::filesystem::is_regular_file(path, ec), path + ": no such file");
    GzFile f(gzopen(path.c_str(), "rb"));
    check(f != nullptr, path + ": cannot open");
    return f;
}

void read_exact(gzFile_s* f, void* dst, int64_t bytes, const std::string& path, const char* what) {
    auto* p = static_cast<char*>(dst);
    while (bytes > 0) {
        unsigned chunk = static_cast<unsigned>(std::min<int64_t>(bytes, 1 << 30));
        int got = gzread(f, p, chunk);
        check(got > 0, path + ": truncated or corrupt while reading " + what);
        p += got;
        bytes -= got;
    }
}

uint32_t read_be32(gzFile_s* f, const std::string& path, const char* what) {
    unsigned char b[4];
    read_exact(f, b, 4, path, what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

void expect_end(gzFile_s* f, const std::string& path) {
    char c;
    check(gzread(f, &c, 1) == 0, path + ": has bytes after the data its header announces");
}

std::string hex(uint32_t v) {
    char s[16];
    std::snprintf(s, sizeof s, "0x%08x", v);
    return s;
}

}  // namespace

Dataset load_idx(const std::string& images_path, const std::string& labels_path, int limit) {
    GzFile img = open_gz(images_path), lab = open_gz(labels_path);
    uint32_t magic = read_be32(img.get(), images_path, "the header");
    check(magic == 0x00000803, images_path + ": magic " + hex(magic) + " is not that of IDX images (0x00000803)");
    const uint32_t n = read_be32(img.get(), images_path, "the header");
    const uint32_t rows = read_be32(img.get(), images_path, "the header");
    const uint32_t cols = read_be32(img.get(), images_path, "the header");
    check(rows > 0 && cols > 0 && rows <= 4096 && cols <= 4096,
          images_path + ": implausible image size " + std::to_string(rows) + "x" + std::to_string(cols));
    magic = read_be32(lab.get(), labels_path, "the header");
    check(magic == 0x00000801, labels_path + ": magic " + hex(magic) + " is not that of IDX labels (0x00000801)");
    const uint32_t n_labels = read_be32(lab.get(), labels_path, "the header");
    check(n == n_labels, labels_path + ": holds " + std::to_string(n_labels) + " labels for the " + std::to_string(n) +
                             " images of " + images_path);

    const int64_t count = limit >= 0 ? std::min<int64_t>(n, limit) : n;
    const int64_t pixels = int64_t(rows) * cols;
    std::vector<unsigned char> bytes(static_cast<size_t>(count * pixels));
    read_exact(img.get(), bytes.data(), count * pixels, images_path, "the images");
    std::vector<unsigned char> labels(static_cast<size_t>(count));
    read_exact(lab.get(), labels.data(), count, labels_path, "the labels");
    if (count == n) {
        expect_end(img.get(), images_path);
        expect_end(lab.get(), labels_path);
    }

    Dataset d;
    d.images = Tensor(Shape{count, 1, int64_t(rows), int64_t(cols)});
    for (size_t i = 0; i < bytes.size(); ++i) d.images[static_cast<int64_t>(i)] = static_cast<float>(bytes[i]) / 255.0f;
    d.labels.assign(labels.begin(), labels.end());
    for (int l : d.labels) d.num_classes = std::max(d.num_classes, l + 1);
    return d;
}

Dataset load_fashion_mnist(const std::string& dir, bool train, int limit) {
    namespace fs = std::filesystem;
    const fs::path base = dir.empty() ? fs::path(kFashionMnistDir) : fs::path(dir);
    const std::string prefix = train ? "train" : "t10k";
    auto find = [&](const std::string& stem) {
        std::error_code ec;
        for (const char* ext : {".gz", ""})
            if (fs::exists(base / (stem + ext), ec)) return (base / (stem + ext)).string();
        fail((base / (stem + ".gz")).string() + ": missing (Fashion-MNIST; Debian package dataset-fashion-mnist)");
    };
    const std::string images = find(prefix + "-images-idx3-ubyte");
    const std::string labels = find(prefix + "-labels-idx1-ubyte");
    Dataset d = load_idx(images, labels, limit);
    check(d.num_classes <= 10, base.string() + ": Fashion-MNIST labels go beyond 9");
    d.num_classes = 10;
    return d;
}

}  // namespace engine
