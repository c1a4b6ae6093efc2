// build_model by name: input, normalisation, the architecture, metadata.
#include "engine/model_zoo.h"

#include <functional>

#include "archs.h"
#include "engine/error.h"

namespace engine {

namespace {

struct Arch {
    const char* name;
    int min_size, max_size;  // accepted image sizes (the SDN archs: 32 or 64 only)
    bool grayscale;          // in_channels = 1 allowed
    std::function<void(zoo::NetBuilder&, zoo::Feat, const zoo::ArchArgs&)> build;
};

const std::vector<Arch>& archs() {
    static const std::vector<Arch> list = {
        {"resnet56", 32, 64, false,
         [](auto& b, auto x, auto& a) {
             zoo::build_resnet_sdn(b, x, a, 9, {4, 8, 12, 16, 20, 24});
         }},
        {"vgg16", 32, 64, false, zoo::build_vgg16_sdn},
        {"mobilenet", 32, 64, false, zoo::build_mobilenet_sdn},
        // Exits after blocks 2 (end of stage 1), 3 (stage 2, block 1) and 5 (stage 3, block 1):
        // 37 %, 51 % and 82 % of the final exit's multiply-adds at 32x32.
        {"small", 8, 256, true,
         [](auto& b, auto x, auto& a) {
             zoo::build_resnet_sdn(b, x, a, 2, {2, 3, 5});
         }},
        {"tiny", 4, 256, true, zoo::build_tiny},
    };
    return list;
}

struct Normalization {
    const char* name;
    std::vector<float> mean, std;
};

// The usual per-channel statistics of the data set the input kind suggests.
Normalization normalization_for(int in_channels, int image_size, int num_classes) {
    if (in_channels == 1) return {"fashion-mnist", {0.2860f}, {0.3530f}};
    if (image_size == 64) return {"tiny-imagenet", {0.4802f, 0.4481f, 0.3975f}, {0.2302f, 0.2265f, 0.2262f}};
    if (num_classes == 100) return {"cifar100", {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}};
    return {"cifar10", {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
}

}  // namespace

std::vector<std::string> model_names() {
    std::vector<std::string> names;
    for (const auto& a : archs()) names.push_back(a.name);
    return names;
}

Model build_model(const std::string& arch, int num_classes, int image_size, uint64_t seed, int in_channels) {
    const Arch* found = nullptr;
    std::string known;
    for (const auto& a : archs()) {
        if (arch == a.name) found = &a;
        known += (known.empty() ? "" : ", ") + std::string(a.name);
    }
    check(found != nullptr, "model '" + arch + "': unknown architecture (known: " + known + ")");
    const std::string where = "model '" + arch + "': ";
    check(num_classes >= 2, where + "needs at least 2 classes, got " + std::to_string(num_classes));
    if (found->min_size == 32)
        check(image_size == 32 || image_size == 64,
              where + "image size must be 32 or 64, got " + std::to_string(image_size));
    else
        check(image_size >= found->min_size && image_size <= found->max_size,
              where + "image size must be " + std::to_string(found->min_size) + " to " +
                  std::to_string(found->max_size) + ", got " + std::to_string(image_size));
    check(in_channels == 3 || (in_channels == 1 && found->grayscale), where + "input channels must be " +
                                                                          (found->grayscale ? "1 or 3" : "3") +
                                                                          ", got " + std::to_string(in_channels));

    zoo::NetBuilder b(seed);
    zoo::Feat x = b.input(in_channels, image_size);
    Normalization norm = normalization_for(in_channels, image_size, num_classes);
    x = b.normalize("segs.0.layers.0", x, norm.mean, norm.std);
    found->build(b, x, {num_classes, image_size, in_channels});
    return b.finish({{"arch", arch},
                     {"num_classes", std::to_string(num_classes)},
                     {"image_size", std::to_string(image_size)},
                     {"in_channels", std::to_string(in_channels)},
                     {"seed", std::to_string(seed)},
                     {"normalization", norm.name}});
}

}  // namespace engine
