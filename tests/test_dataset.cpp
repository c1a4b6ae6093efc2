// Data set readers: small CIFAR and IDX files written here (plain and gzipped) read back exactly,
// a miniature Tiny-ImageNet tree of JPEGs encoded here reads back within JPEG's error; malformed
// files throw naming the file; the shared CIFAR-10 test batch matches the reference images the
// shared models were evaluated on.
#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdio>  // jpeglib.h needs FILE
#include <cstdlib>
#include <jpeglib.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "test_util.h"

using namespace engine;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("engine_test_dataset_" + std::to_string(::getpid()) + "_" +
                                            std::to_string(reinterpret_cast<uintptr_t>(this)));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

using Bytes = std::vector<unsigned char>;

void write_file(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const Bytes& bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
    gzclose(f);
}

// Pixel value of record r at byte i: a pattern that differs per record, channel and position.
unsigned char pixel(int r, int i) { return static_cast<unsigned char>((r * 37 + i * 11 + i / 1024) % 256); }

// CIFAR records: label bytes, then 3072 pixel bytes.
Bytes cifar_records(const std::vector<std::vector<int>>& labels) {
    Bytes b;
    for (size_t r = 0; r < labels.size(); ++r) {
        for (int l : labels[r]) b.push_back(static_cast<unsigned char>(l));
        for (int i = 0; i < 3072; ++i) b.push_back(pixel(int(r), i));
    }
    return b;
}

void put_be32(Bytes& b, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

Bytes idx_images(int n, int rows, int cols, uint32_t magic = 0x00000803) {
    Bytes b;
    put_be32(b, magic);
    put_be32(b, n);
    put_be32(b, rows);
    put_be32(b, cols);
    for (int i = 0; i < n * rows * cols; ++i) b.push_back(static_cast<unsigned char>((i * 7) % 256));
    return b;
}

Bytes idx_labels(const std::vector<int>& labels) {
    Bytes b;
    put_be32(b, 0x00000801);
    put_be32(b, static_cast<uint32_t>(labels.size()));
    for (int l : labels) b.push_back(static_cast<unsigned char>(l));
    return b;
}

// A width x height JPEG at quality 100 without chroma subsampling; value(x, y, c) gives the
// samples (c is always 0 for a grayscale one).
using PixelFn = std::function<int(int x, int y, int c)>;
Bytes encode_jpeg(int width, int height, bool gray, const PixelFn& value) {
    jpeg_compress_struct cinfo;
    jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    unsigned char* out = nullptr;
    unsigned long out_size = 0;
    jpeg_mem_dest(&cinfo, &out, &out_size);
    const int channels = gray ? 1 : 3;
    cinfo.image_width = static_cast<JDIMENSION>(width);
    cinfo.image_height = static_cast<JDIMENSION>(height);
    cinfo.input_components = channels;
    cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 100, TRUE);
    for (int c = 0; c < cinfo.num_components; ++c)
        cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    std::vector<unsigned char> row(static_cast<size_t>(width * channels));
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x)
            for (int c = 0; c < channels; ++c)
                row[static_cast<size_t>(x * channels + c)] = static_cast<unsigned char>(value(x, y, c));
        JSAMPROW rows[1] = {row.data()};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    Bytes bytes(out, out + out_size);
    std::free(out);
    return bytes;
}

// A flat colour that differs per class k and image n.
int flat(int k, int n, int c) { return c == 0 ? 40 + 60 * k : c == 1 ? 200 - 50 * n : 90 + 30 * k * n; }
int gradient(int x, int y, int c) { return c == 0 ? 4 * x : c == 1 ? 4 * y : 128; }
constexpr int kGray = 77;

// Tiny-ImageNet's layout in miniature: classes listed out of alphabetical order (n02, n01, n03), two
// train images each (written in reverse name order), two val images. Class n03's images are a
// grayscale one and a gradient; the others are flat colours.
void write_tiny_imagenet(const fs::path& root) {
    fs::create_directories(root / "val" / "images");
    write_file((root / "wnids.txt").string(), Bytes{'n', '0', '2', '\n', 'n', '0', '1', '\n', 'n', '0', '3', '\n'});
    const std::vector<std::string> wnids = {"n02", "n01", "n03"};
    for (int k = 0; k < 3; ++k) {
        const fs::path dir = root / "train" / wnids[size_t(k)];
        fs::create_directories(dir / "images");
        write_file((dir / (wnids[size_t(k)] + "_boxes.txt")).string(), Bytes{'x'});  // as the archive has; not an image
        for (int n = 1; n >= 0; --n) {
            Bytes jpeg = k == 2 && n == 0 ? encode_jpeg(64, 64, true, [](int, int, int) { return kGray; })
                         : k == 2         ? encode_jpeg(64, 64, false, gradient)
                                          : encode_jpeg(64, 64, false, [&](int, int, int c) { return flat(k, n, c); });
            write_file((dir / "images" / (wnids[size_t(k)] + "_" + std::to_string(n) + ".JPEG")).string(), jpeg);
        }
    }
    write_file((root / "val" / "images" / "val_0.JPEG").string(),
               encode_jpeg(64, 64, false, [](int, int, int c) { return flat(1, 3, c); }));
    write_file((root / "val" / "images" / "val_1.JPEG").string(),
               encode_jpeg(64, 64, false, [](int, int, int c) { return flat(0, 3, c); }));
    const std::string annotations = "val_0.JPEG\tn01\t0\t0\t63\t63\nval_1.JPEG\tn02\t1\t2\t30\t40\n";
    write_file((root / "val" / "val_annotations.txt").string(), Bytes(annotations.begin(), annotations.end()));
}

// Largest |decoded - expected / 255| over image r of d.
float max_error(const Dataset& d, int64_t r, const PixelFn& expected) {
    float worst = 0;
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 64; ++y)
            for (int x = 0; x < 64; ++x)
                worst = std::max(
                    worst, std::abs(d.images[((r * 3 + c) * 64 + y) * 64 + x] - float(expected(x, y, c)) / 255.0f));
    return worst;
}

// Quality 100 still rounds through YCbCr and the DCT: flat colours come back within 3 levels, a
// ramp of 4 levels a pixel within 4.
constexpr float kJpegTolerance = 3.0f / 255.0f;
constexpr float kJpegGradientTolerance = 4.0f / 255.0f;

}  // namespace

TEST_CASE("CIFAR-10: a single file reads back labels and pixels/255 in CHW order") {
    TempDir tmp;
    write_file(tmp / "one.bin", cifar_records({{3}, {9}, {0}}));
    Dataset d = load_cifar(tmp / "one.bin", false, 10);
    CHECK(d.num_classes == 10);
    CHECK(d.labels == std::vector<int>{3, 9, 0});
    REQUIRE(d.images.shape() == Shape{3, 3, 32, 32});
    for (int r = 0; r < 3; ++r)
        for (int i : {0, 1, 31, 32, 1023, 1024, 2047, 2048, 3071})
            CHECK(d.images[r * 3072 + i] == float(pixel(r, i)) / 255.0f);
    Dataset two = load_cifar(tmp / "one.bin", true, 10, 2);
    CHECK(two.labels == std::vector<int>{3, 9});
    CHECK(two.images.shape() == Shape{2, 3, 32, 32});
}

TEST_CASE("CIFAR-10 directory: five train batches in order, the test batch apart") {
    TempDir tmp;
    for (int i = 1; i <= 5; ++i)
        write_file(tmp / ("data_batch_" + std::to_string(i) + ".bin"), cifar_records({{i}, {i + 1}}));
    write_file(tmp / "test_batch.bin", cifar_records({{7}}));
    Dataset train = load_cifar(tmp.path.string(), true, 10);
    CHECK(train.labels == std::vector<int>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6});
    CHECK(train.images.shape() == Shape{10, 3, 32, 32});
    // Record 0 of batch 2 sits at index 2 and carries pattern 0.
    CHECK(train.images[2 * 3072 + 5] == float(pixel(0, 5)) / 255.0f);
    CHECK(load_cifar(tmp.path.string(), false, 10).labels == std::vector<int>{7});
    CHECK(load_cifar(tmp.path.string(), true, 10, 3).labels == std::vector<int>{1, 2, 2});
    fs::remove(tmp / "data_batch_4.bin");
    CHECK_THROWS_WITH_AS(load_cifar(tmp.path.string(), true, 10), doctest::Contains("data_batch_4.bin: missing"),
                         Error);
}

TEST_CASE("CIFAR-100: fine labels, train.bin/test.bin, also inside cifar-100-binary/") {
    TempDir tmp;
    fs::create_directories(tmp.path / "cifar-100-binary");
    write_file(tmp / "cifar-100-binary/train.bin", cifar_records({{19, 99}, {0, 42}}));
    write_file(tmp / "cifar-100-binary/test.bin", cifar_records({{1, 5}}));
    Dataset d = load_cifar(tmp.path.string(), true, 100);
    CHECK(d.num_classes == 100);
    CHECK(d.labels == std::vector<int>{99, 42});
    CHECK(d.images[3072 + 100] == float(pixel(1, 100)) / 255.0f);
    CHECK(load_cifar(tmp.path.string(), false, 100).labels == std::vector<int>{5});
}

TEST_CASE("bad CIFAR files throw one line naming the file") {
    TempDir tmp;
    Bytes b = cifar_records({{1}, {2}});
    b.pop_back();
    write_file(tmp / "short.bin", b);
    CHECK_THROWS_WITH_AS(load_cifar(tmp / "short.bin", false, 10), doctest::Contains("short.bin: size 6145"), Error);
    write_file(tmp / "label.bin", cifar_records({{1}, {10}}));
    CHECK_THROWS_WITH_AS(load_cifar(tmp / "label.bin", false, 10),
                         doctest::Contains("label.bin: record 1 has label 10"), Error);
    write_file(tmp / "fine.bin", cifar_records({{1, 100}}));
    CHECK_THROWS_WITH_AS(load_cifar(tmp / "fine.bin", false, 100), doctest::Contains("has label 100"), Error);
    // A CIFAR-10 file read as CIFAR-100: 3073 is not a multiple of 3074.
    write_file(tmp / "ten.bin", cifar_records({{1}}));
    CHECK_THROWS_WITH_AS(load_cifar(tmp / "ten.bin", false, 100), doctest::Contains("3074-byte"), Error);
    write_file(tmp / "empty.bin", {});
    CHECK_THROWS_AS(load_cifar(tmp / "empty.bin", false, 10), Error);
    CHECK_THROWS_WITH_AS(load_cifar(tmp / "nothing.bin", false, 10), doctest::Contains("nothing.bin: no such file"),
                         Error);
    CHECK_THROWS_WITH_AS(load_cifar(tmp.path.string(), false, 10), doctest::Contains("test_batch.bin: missing"), Error);
    CHECK_THROWS_WITH_AS(load_cifar(tmp / "ten.bin", false, 20), doctest::Contains("10 or 100 classes"), Error);
}

TEST_CASE("IDX: plain and gzipped files read back as N,1,rows,cols in [0,1]") {
    TempDir tmp;
    const std::vector<int> labels = {4, 0, 9, 2};
    Bytes images = idx_images(4, 5, 3);
    write_file(tmp / "img", images);
    write_file(tmp / "lab", idx_labels(labels));
    write_gz(tmp / "img.gz", images);
    write_gz(tmp / "lab.gz", idx_labels(labels));
    for (auto [img, lab] : {std::pair{"img", "lab"}, std::pair{"img.gz", "lab.gz"}, std::pair{"img.gz", "lab"}}) {
        INFO(img << " " << lab);
        Dataset d = load_idx(tmp / img, tmp / lab);
        CHECK(d.labels == labels);
        CHECK(d.num_classes == 10);
        REQUIRE(d.images.shape() == Shape{4, 1, 5, 3});
        for (int i = 0; i < 60; ++i) CHECK(d.images[i] == float(images[16 + i]) / 255.0f);
    }
    Dataset two = load_idx(tmp / "img.gz", tmp / "lab.gz", 2);
    CHECK(two.labels == std::vector<int>{4, 0});
    CHECK(two.images.shape() == Shape{2, 1, 5, 3});
}

TEST_CASE("bad IDX files throw naming the file") {
    TempDir tmp;
    write_file(tmp / "lab", idx_labels({1, 2, 3}));
    write_file(tmp / "img", idx_images(3, 4, 4));
    write_file(tmp / "magic", idx_images(3, 4, 4, 0x00000801));
    CHECK_THROWS_WITH_AS(load_idx(tmp / "magic", tmp / "lab"), doctest::Contains("magic: magic 0x00000801"), Error);
    CHECK_THROWS_WITH_AS(load_idx(tmp / "img", tmp / "img"), doctest::Contains("is not that of IDX labels"), Error);
    write_file(tmp / "four", idx_images(4, 4, 4));
    CHECK_THROWS_WITH_AS(load_idx(tmp / "four", tmp / "lab"), doctest::Contains("holds 3 labels for the 4 images"),
                         Error);
    Bytes cut = idx_images(3, 4, 4);
    cut.resize(cut.size() - 5);
    write_gz(tmp / "cut.gz", cut);
    CHECK_THROWS_WITH_AS(load_idx(tmp / "cut.gz", tmp / "lab"), doctest::Contains("cut.gz: truncated"), Error);
    Bytes extra = idx_images(3, 4, 4);
    extra.push_back(0);
    write_file(tmp / "extra", extra);
    CHECK_THROWS_WITH_AS(load_idx(tmp / "extra", tmp / "lab"), doctest::Contains("extra: has bytes after"), Error);
    CHECK_THROWS_WITH_AS(load_idx(tmp / "none", tmp / "lab"), doctest::Contains("none: no such file"), Error);
    CHECK_THROWS_WITH_AS(load_fashion_mnist(tmp.path.string(), true),
                         doctest::Contains("train-images-idx3-ubyte.gz: missing"), Error);
}

TEST_CASE("load_fashion_mnist finds the files with or without .gz") {
    TempDir tmp;
    write_gz(tmp / "t10k-images-idx3-ubyte.gz", idx_images(2, 28, 28));
    write_file(tmp / "t10k-labels-idx1-ubyte", idx_labels({3, 1}));
    Dataset d = load_fashion_mnist(tmp.path.string(), false);
    CHECK(d.num_classes == 10);  // fixed, whatever labels a subset happens to hold
    CHECK(d.labels == std::vector<int>{3, 1});
    CHECK(d.images.shape() == Shape{2, 1, 28, 28});
}

TEST_CASE("Tiny-ImageNet: class order from wnids.txt, train by class then name, val labels from the annotations") {
    TempDir tmp;
    const fs::path root = tmp.path / "tiny-imagenet-200";
    write_tiny_imagenet(root);
    Dataset train = load_tiny_imagenet(root.string(), true);
    CHECK(train.num_classes == 3);
    CHECK(train.labels == std::vector<int>{0, 0, 1, 1, 2, 2});
    REQUIRE(train.images.shape() == Shape{6, 3, 64, 64});
    for (int k = 0; k < 2; ++k)
        for (int n = 0; n < 2; ++n) {
            INFO("class " << k << " image " << n);
            CHECK(max_error(train, 2 * k + n, [&](int, int, int c) { return flat(k, n, c); }) < kJpegTolerance);
        }
    CHECK(max_error(train, 4, [](int, int, int) { return kGray; }) < kJpegTolerance);  // grayscale, replicated
    CHECK(max_error(train, 5, gradient) < kJpegGradientTolerance);                     // rows are y, columns x

    Dataset val = load_tiny_imagenet(root.string(), false);
    CHECK(val.num_classes == 3);
    CHECK(val.labels == std::vector<int>{1, 0});
    REQUIRE(val.images.shape() == Shape{2, 3, 64, 64});
    CHECK(max_error(val, 0, [](int, int, int c) { return flat(1, 3, c); }) < kJpegTolerance);
    CHECK(max_error(val, 1, [](int, int, int c) { return flat(0, 3, c); }) < kJpegTolerance);

    CHECK(load_tiny_imagenet(root.string(), true, 3).labels == std::vector<int>{0, 0, 1});
    // The folder holding the extracted archive works too, and the tools' loader recognises the layout.
    CHECK(load_tiny_imagenet(tmp.path.string(), false).labels == std::vector<int>{1, 0});
    Dataset via_cli = load_dataset_dir(root.string(), false);
    CHECK(via_cli.labels == std::vector<int>{1, 0});
    CHECK(std::equal(via_cli.images.data(), via_cli.images.data() + via_cli.images.numel(), val.images.data()));
    CHECK(load_dataset_dir(tmp.path.string(), true, 4).labels == std::vector<int>{0, 0, 1, 1});
}

TEST_CASE("bad Tiny-ImageNet trees throw one line naming the file") {
    TempDir tmp;
    const fs::path root = tmp.path;
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), true), doctest::Contains("wnids.txt: missing"), Error);
    write_tiny_imagenet(root);
    const std::string images = (root / "val" / "images").string() + "/";

    Bytes good = encode_jpeg(64, 64, false, gradient);
    write_file(images + "val_1.JPEG", Bytes{'n', 'o', 't', ' ', 'a', ' ', 'j', 'p', 'e', 'g'});
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), false), doctest::Contains("val_1.JPEG: not a valid JPEG ("),
                         Error);
    write_file(images + "val_1.JPEG", Bytes(good.begin(), good.begin() + long(good.size() / 2)));
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), false),
                         doctest::Contains("val_1.JPEG: not a valid JPEG (Premature end"), Error);
    write_file(images + "val_1.JPEG", encode_jpeg(32, 48, false, gradient));
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), false), doctest::Contains("val_1.JPEG: image is 32x48"),
                         Error);
    fs::remove(images + "val_1.JPEG");
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), false), doctest::Contains("val_1.JPEG: cannot open"), Error);
    write_file(images + "val_1.JPEG", good);
    CHECK(load_tiny_imagenet(root.string(), false).size() == 2);

    const std::string unknown = "val_0.JPEG\tn01\t0\t0\t1\t1\nval_1.JPEG\tn99\t0\t0\t1\t1\n";
    write_file((root / "val" / "val_annotations.txt").string(), Bytes(unknown.begin(), unknown.end()));
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), false),
                         doctest::Contains("val_annotations.txt:2: class n99 is not in wnids.txt"), Error);

    write_file((root / "train" / "n01" / "images" / "n01_7.JPEG").string(), encode_jpeg(32, 32, true, gradient));
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), true), doctest::Contains("n01_7.JPEG: image is 32x32"),
                         Error);
    fs::remove_all(root / "train" / "n03");
    CHECK_THROWS_WITH_AS(load_tiny_imagenet(root.string(), true), doctest::Contains("n03/images: missing"), Error);
}

TEST_CASE("the installed Fashion-MNIST (Debian dataset-fashion-mnist)") {
    if (!test::have_material(fs::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz"), "Fashion-MNIST",
                             std::string(kFashionMnistDir) + " not installed (Debian package dataset-fashion-mnist)"))
        return;
    Dataset d = load_fashion_mnist("", false);
    CHECK(d.size() == 10000);
    CHECK(d.images.shape() == Shape{10000, 1, 28, 28});
    std::vector<int> hist(10, 0);
    for (int l : d.labels) hist.at(l)++;
    CHECK(hist == std::vector<int>(10, 1000));
}

TEST_CASE("the shared CIFAR-10 test batch: 10000 balanced records, the first as the reference images") {
    if (!test::have_shared("CIFAR-10 test batch")) return;
    const std::string data = test::shared_dir() + "/data/cifar10";
    Dataset d = load_cifar(data, false, 10);
    CHECK(d.size() == 10000);
    CHECK(d.images.shape() == Shape{10000, 3, 32, 32});
    std::vector<int> hist(10, 0);
    for (int l : d.labels) hist.at(l)++;
    CHECK(hist == std::vector<int>(10, 1000));
    auto ref = read_safetensors(test::shared_dir() + "/models/resnet56_s1.reference.safetensors");
    const Tensor& images = ref.at("images");
    REQUIRE(images.numel() >= 2 * 3072);
    for (int r = 0; r < 2; ++r)
        CHECK(std::equal(d.images.data() + r * 3072, d.images.data() + (r + 1) * 3072, images.data() + r * 3072));
}
