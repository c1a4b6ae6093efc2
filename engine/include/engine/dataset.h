// Image classification data sets read into memory as float32 NCHW in [0, 1] (pixels / 255).
// Every reader validates what it reads and throws engine::Error "<file>: <problem>".
#pragma once
#include "engine/api.h"
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace engine {

struct ENGINE_API Dataset {
    Tensor images;            // N, C, H, W in [0, 1]
    std::vector<int> labels;  // N labels in [0, num_classes)
    int num_classes = 0;
    int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// CIFAR binary format. CIFAR-10: records of 1 label byte + 3072 pixel bytes (R, G, B planes of
// 32x32), files data_batch_1..5.bin (train) and test_batch.bin (test). CIFAR-100: records of a
// coarse and a fine label byte + 3072 pixel bytes, files train.bin and test.bin; the fine label
// (100 classes) is used. dir_or_file is the folder holding those files (or the folder that holds
// the extracted archive's cifar-10-batches-bin / cifar-100-binary) or one .bin file, in which
// case `train` is ignored. limit >= 0 reads at most that many records.
ENGINE_API Dataset load_cifar(const std::string& dir_or_file, bool train, int num_classes, int limit = -1);

// IDX files as MNIST and Fashion-MNIST ship them, gzipped or plain: images with magic
// 0x00000803 (N, rows, cols of bytes) as N,1,rows,cols, labels with magic 0x00000801.
// num_classes is the largest label + 1.
ENGINE_API Dataset load_idx(const std::string& images_path, const std::string& labels_path, int limit = -1);

// Where Debian's dataset-fashion-mnist package puts the four .gz files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST from `dir` (train-images-idx3-ubyte[.gz] and friends, t10k-* for test);
// 10 classes, 28x28 grayscale. An empty dir means kFashionMnistDir.
ENGINE_API Dataset load_fashion_mnist(const std::string& dir, bool train, int limit = -1);

// Tiny-ImageNet-200 as the official tiny-imagenet-200.zip extracts: root/wnids.txt (class ids, one
// a line; the class index is the line's order), root/train/<wnid>/images/*.JPEG (train: by class,
// then file name) and root/val/images/ labelled by root/val/val_annotations.txt (train = false:
// in the annotations' order). root may also be the folder holding tiny-imagenet-200/. The
// unlabelled root/test/ is not read. Images are 64x64 JPEG, grayscale ones replicated into RGB:
// N,3,64,64 (the whole train split is 100000 images, 4.9 GB as floats). limit >= 0 reads the first
// that many in that order, so a small train limit holds the first classes only. num_classes is the
// number of wnids (200).
ENGINE_API Dataset load_tiny_imagenet(const std::string& root, bool train, int limit = -1);

// The test (or training) split of whatever data set `dir` holds: CIFAR-10 (test_batch.bin),
// CIFAR-100 (test.bin), IDX / Fashion-MNIST (t10k-images-idx3-ubyte[.gz]) or Tiny-ImageNet-200
// (wnids.txt; its val/ split stands for test); throws naming dir.
ENGINE_API Dataset load_dataset_dir(const std::string& dir, bool train, int limit = -1);

}  // namespace engine
