#include <filesystem>

#include "engine/dataset.h"
#include "engine/error.h"

namespace engine {

Dataset load_dataset_dir(const std::string& dir, bool train, int limit) {
    namespace fs = std::filesystem;
    check(fs::exists(dir), dir + ": no such file or directory");
    if (fs::is_regular_file(dir)) return load_cifar(dir, train, 10, limit);
    auto has = [&](const char* name) { return fs::exists(fs::path(dir) / name); };
    if (has("test_batch.bin") || has("data_batch_1.bin") || has("cifar-10-batches-bin"))
        return load_cifar(dir, train, 10, limit);
    if (has("test.bin") || has("train.bin") || has("cifar-100-binary")) return load_cifar(dir, train, 100, limit);
    if (has("t10k-images-idx3-ubyte") || has("t10k-images-idx3-ubyte.gz")) return load_fashion_mnist(dir, train, limit);
    if (has("wnids.txt") || has("tiny-imagenet-200")) return load_tiny_imagenet(dir, train, limit);
    fail(dir + ": no CIFAR-10, CIFAR-100, IDX (Fashion-MNIST) or Tiny-ImageNet-200 files found");
}

}  // namespace engine
