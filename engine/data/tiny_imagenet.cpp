// Tiny-ImageNet-200 (http://cs231n.stanford.edu/tiny-imagenet-200.zip): a folder of 64x64 JPEGs,
// decoded with libjpeg(-turbo).
#include <cstdio>  // jpeglib.h needs FILE
#include <csetjmp>
#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "engine/dataset.h"
#include "engine/error.h"

namespace engine {

namespace {

namespace fs = std::filesystem;
constexpr int kSide = 64;
constexpr int64_t kPixels = 3 * kSide * kSide;

// libjpeg reports a fatal error by calling error_exit, which must not return: jump back into
// decode_jpeg with the message. Everything between setjmp and longjmp is C, so no destructor is skipped.
struct JpegError {
    jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegError*>(cinfo->err);
    cinfo->err->format_message(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

// Warnings stay quiet, except a file that ends early: libjpeg would pad it with grey.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(cinfo);
}

enum class JpegStatus { ok, invalid, wrong_size };

// Decodes a kSide x kSide JPEG into rgb (HWC, 3 bytes a pixel); a grayscale one is replicated
// into the three channels. On wrong_size, width and height hold the image's; on invalid, message
// holds libjpeg's reason.
JpegStatus decode_jpeg(const unsigned char* data, size_t size, unsigned char* rgb, int* width, int* height,
                       char* message) {
    JpegError err;
    jpeg_decompress_struct cinfo;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    err.mgr.emit_message = jpeg_emit_message;
    if (setjmp(err.jump)) {
        std::snprintf(message, JMSG_LENGTH_MAX, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        return JpegStatus::invalid;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    *width = static_cast<int>(cinfo.image_width);
    *height = static_cast<int>(cinfo.image_height);
    if (cinfo.image_width != kSide || cinfo.image_height != kSide) {
        jpeg_destroy_decompress(&cinfo);
        return JpegStatus::wrong_size;
    }
    const bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
    cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    unsigned char row[3 * kSide];
    JSAMPROW rows[1] = {row};
    for (int y = 0; y < kSide; ++y) {
        jpeg_read_scanlines(&cinfo, rows, 1);
        unsigned char* dst = rgb + y * 3 * kSide;
        for (int x = 0; x < kSide; ++x)
            for (int c = 0; c < 3; ++c) dst[3 * x + c] = gray ? row[x] : row[3 * x + c];
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return JpegStatus::ok;
}

// Reads one image file into dst (CHW floats in [0, 1]); returns "" or the error line.
std::string read_image(const std::string& path, float* dst) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return path + ": cannot open";
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    unsigned char rgb[kPixels];
    int width = 0, height = 0;
    char message[JMSG_LENGTH_MAX] = "";
    switch (decode_jpeg(bytes.data(), bytes.size(), rgb, &width, &height, message)) {
        case JpegStatus::invalid:
            return path + ": not a valid JPEG (" + message + ")";
        case JpegStatus::wrong_size:
            return path + ": image is " + std::to_string(width) + "x" + std::to_string(height) +
                   ", Tiny-ImageNet images are 64x64";
        case JpegStatus::ok:
            break;
    }
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < kSide * kSide; ++i)
            dst[c * kSide * kSide + i] = static_cast<float>(rgb[3 * i + c]) / 255.0f;
    return "";
}

std::vector<std::string> read_wnids(const fs::path& file) {
    std::error_code ec;
    check(fs::is_regular_file(file, ec), file.string() + ": missing (the Tiny-ImageNet class list)");
    std::ifstream in(file);
    check(in.good(), file.string() + ": cannot open");
    std::vector<std::string> wnids;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string wnid;
        if (!(words >> wnid)) continue;
        check(std::find(wnids.begin(), wnids.end(), wnid) == wnids.end(),
              file.string() + ": class " + wnid + " listed twice");
        wnids.push_back(wnid);
    }
    check(!wnids.empty(), file.string() + ": no class ids");
    return wnids;
}

bool is_jpeg_name(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return ext == ".jpeg" || ext == ".jpg";
}

// train/<wnid>/images/*.JPEG, by class then file name.
void list_train(const fs::path& root, const std::vector<std::string>& wnids, std::vector<std::string>& paths,
                std::vector<int>& labels) {
    for (size_t k = 0; k < wnids.size(); ++k) {
        const fs::path dir = root / "train" / wnids[k] / "images";
        std::error_code ec;
        check(fs::is_directory(dir, ec), dir.string() + ": missing (train images of class " + wnids[k] + ")");
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir))
            if (entry.is_regular_file() && is_jpeg_name(entry.path())) names.push_back(entry.path().string());
        std::sort(names.begin(), names.end());
        for (auto& n : names) {
            paths.push_back(std::move(n));
            labels.push_back(static_cast<int>(k));
        }
    }
}

// val/val_annotations.txt: "<file>\t<wnid>\t<x0>\t<y0>\t<x1>\t<y1>" per line, in its order.
void list_val(const fs::path& root, const std::vector<std::string>& wnids, std::vector<std::string>& paths,
              std::vector<int>& labels) {
    const fs::path file = root / "val" / "val_annotations.txt";
    std::error_code ec;
    check(fs::is_regular_file(file, ec), file.string() + ": missing (the Tiny-ImageNet validation labels)");
    std::ifstream in(file);
    check(in.good(), file.string() + ": cannot open");
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        std::istringstream fields(line);
        std::string name, wnid;
        if (!(fields >> name)) continue;
        const std::string where = file.string() + ":" + std::to_string(number);
        check(static_cast<bool>(fields >> wnid), where + ": no class id after " + name);
        auto it = std::find(wnids.begin(), wnids.end(), wnid);
        check(it != wnids.end(), where + ": class " + wnid + " is not in wnids.txt");
        paths.push_back((root / "val" / "images" / name).string());
        labels.push_back(static_cast<int>(it - wnids.begin()));
    }
}

}  // namespace

Dataset load_tiny_imagenet(const std::string& root_dir, bool train, int limit) {
    fs::path root = root_dir;
    std::error_code ec;
    check(fs::is_directory(root, ec), root_dir + ": no such directory");
    if (!fs::exists(root / "wnids.txt", ec) && fs::exists(root / "tiny-imagenet-200" / "wnids.txt", ec))
        root /= "tiny-imagenet-200";
    const auto wnids = read_wnids(root / "wnids.txt");

    std::vector<std::string> paths;
    std::vector<int> labels;
    if (train)
        list_train(root, wnids, paths, labels);
    else
        list_val(root, wnids, paths, labels);
    if (limit >= 0 && static_cast<size_t>(limit) < paths.size()) {
        paths.resize(static_cast<size_t>(limit));
        labels.resize(static_cast<size_t>(limit));
    }

    Dataset d;
    d.num_classes = static_cast<int>(wnids.size());
    const auto n = static_cast<int64_t>(paths.size());
    d.images = Tensor(Shape{n, 3, kSide, kSide});
    d.labels = std::move(labels);
    // Decoding dominates (100000 files for train); the first failing file in order is reported.
    int64_t first_bad = n;
    std::string bad_message;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
        std::string message = read_image(paths[static_cast<size_t>(i)], d.images.data() + i * kPixels);
        if (!message.empty()) {
#pragma omp critical(engine_tiny_imagenet_error)
            if (i < first_bad) {
                first_bad = i;
                bad_message = std::move(message);
            }
        }
    }
    check(first_bad == n, bad_message);
    return d;
}

}  // namespace engine
