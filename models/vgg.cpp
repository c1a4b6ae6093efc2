// SDN VGG-16-BN (Kaya et al., 2019, network_architectures.py): 13 conv3x3+BN+ReLU layers with
// 2x2 max pooling after layers 2, 4, 7, 10 and 13; ICs after conv layers 2, 4, 6, 7, 9 and 10
// (1-based; SDN's add_ic list, "15, 30, 45, 60, 75, 90 percent of GFLOPs"), each reading the
// layer's output after its pooling; then FC-ReLU-Dropout, FC, Dropout, FC. The FC widths are
// SDN's: 512-512 for 32x32 inputs, 2048-1024 for 64x64. Convs carry no bias here (SDN's do, but
// a bias right before BatchNorm is redundant).
#include "archs.h"

namespace engine::zoo {

void build_vgg16_sdn(NetBuilder& b, Feat x, const ArchArgs& args) {
    const int channels[13] = {64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512};
    const bool pool_after[13] = {false, true, false, true, false, false, true, false, false, true, false, false, true};
    const bool ic_after[13] = {false, true, false, true, false, true, true, false, true, true, false, false, false};
    int seg = 0, layer = 1;
    auto name = [&](int i) { return "segs." + std::to_string(seg) + ".layers." + std::to_string(i); };
    for (int i = 0; i < 13; ++i) {
        const std::string n = name(layer++);
        x = b.conv_bn_relu(n, x, channels[i], 3, 1, 1);
        if (pool_after[i]) x = b.max_pool(n + ".3", x, 2);
        if (ic_after[i]) {
            b.add_exit(b.ic_head("segs." + std::to_string(seg) + ".ic", x, args.num_classes));
            ++seg;
            layer = 0;
        }
    }
    const int fc1 = args.image_size >= 64 ? 2048 : 512;
    const int fc2 = args.image_size >= 64 ? 1024 : 512;
    x = b.flatten(name(layer), x);
    const std::string hidden = name(layer + 1), end = name(layer + 2);
    x = b.linear(hidden + ".0", x, fc1);
    x = b.relu(hidden + ".1", x);
    x = b.dropout(hidden + ".2", x, 0.5f);
    x = b.linear(end + ".0", x, fc2);
    x = b.dropout(end + ".1", x, 0.5f);
    b.add_exit(b.linear(end + ".2", x, args.num_classes).node);
}

}  // namespace engine::zoo
