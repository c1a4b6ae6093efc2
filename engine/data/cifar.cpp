// CIFAR-10/100 binary batches (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version").
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/dataset.h"
#include "engine/error.h"

namespace engine {

namespace {

namespace fs = std::filesystem;
constexpr int64_t kPixels = 3 * 32 * 32;

std::vector<std::string> cifar_files(const std::string& dir_or_file, bool train, int num_classes) {
    std::error_code ec;
    if (!fs::is_directory(dir_or_file, ec)) {
        check(fs::exists(dir_or_file, ec), dir_or_file + ": no such file or directory");
        return {dir_or_file};
    }
    std::vector<std::string> names;
    if (num_classes == 10) {
        if (train)
            for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
        else
            names.push_back("test_batch.bin");
    } else {
        names.push_back(train ? "train.bin" : "test.bin");
    }
    // Also accept the folder the official archive was extracted in.
    fs::path dir = dir_or_file;
    const char* sub = num_classes == 10 ? "cifar-10-batches-bin" : "cifar-100-binary";
    if (!fs::exists(dir / names[0], ec) && fs::exists(dir / sub / names[0], ec)) dir /= sub;
    std::vector<std::string> paths;
    for (const auto& n : names) {
        fs::path p = dir / n;
        check(fs::exists(p, ec), p.string() + ": missing (CIFAR-" + std::to_string(num_classes) + " " +
                                     (train ? "train" : "test") + " file)");
        paths.push_back(p.string());
    }
    return paths;
}

}  // namespace

Dataset load_cifar(const std::string& dir_or_file, bool train, int num_classes, int limit) {
    check(num_classes == 10 || num_classes == 100,
          dir_or_file + ": CIFAR has 10 or 100 classes, not " + std::to_string(num_classes));
    const int label_bytes = num_classes == 10 ? 1 : 2;
    const int64_t record = label_bytes + kPixels;
    const auto paths = cifar_files(dir_or_file, train, num_classes);

    // Sizes first, so that the images are allocated once.
    std::vector<int64_t> counts;
    int64_t total = 0;
    for (const auto& p : paths) {
        std::error_code ec;
        const auto bytes = static_cast<int64_t>(fs::file_size(p, ec));
        check(!ec, p + ": cannot read its size (" + ec.message() + ")");
        check(bytes > 0 && bytes % record == 0, p + ": size " + std::to_string(bytes) + " is not a multiple of the " +
                                                    std::to_string(record) + "-byte CIFAR-" +
                                                    std::to_string(num_classes) + " record");
        int64_t n = bytes / record;
        if (limit >= 0) n = std::min<int64_t>(n, limit - total);
        counts.push_back(n);
        total += n;
    }

    Dataset d;
    d.num_classes = num_classes;
    d.images = Tensor(Shape{total, 3, 32, 32});
    d.labels.resize(static_cast<size_t>(total));
    std::vector<unsigned char> buf(static_cast<size_t>(record));
    int64_t at = 0;
    for (size_t f = 0; f < paths.size(); ++f) {
        std::ifstream in(paths[f], std::ios::binary);
        check(in.good(), paths[f] + ": cannot open");
        for (int64_t r = 0; r < counts[f]; ++r, ++at) {
            in.read(reinterpret_cast<char*>(buf.data()), record);
            check(in.gcount() == record, paths[f] + ": read failed at record " + std::to_string(r));
            const int label = buf[label_bytes - 1];  // CIFAR-100: the fine label follows the coarse one
            check(label < num_classes, paths[f] + ": record " + std::to_string(r) + " has label " +
                                           std::to_string(label) + ", outside 0.." + std::to_string(num_classes - 1));
            d.labels[static_cast<size_t>(at)] = label;
            float* dst = d.images.data() + at * kPixels;
            for (int64_t i = 0; i < kPixels; ++i) dst[i] = static_cast<float>(buf[label_bytes + i]) / 255.0f;
        }
    }
    return d;
}

}  // namespace engine
