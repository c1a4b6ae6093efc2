// SDN MobileNet (v1 for CIFAR): conv3x3(32)+BN+ReLU, 13 depthwise-separable blocks, ICs after
// blocks 3, 5, 7, 9 and 12 (1-based), average pooling down to 1x1 (kernel 2 at 32x32, 4 at 64x64,
// as SDN) and a linear layer. Block "segs.<k>.layers.<i>": .0 depthwise 3x3, .1 BN, .2 ReLU,
// .3 pointwise 1x1, .4 BN, .5 ReLU, as the shared models' state dict.
#include "archs.h"

namespace engine::zoo {

void build_mobilenet_sdn(NetBuilder& b, Feat x, const ArchArgs& args) {
    struct Cfg {
        int out, stride;
    };
    const Cfg cfg[13] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},  {512, 2}, {512, 1},
                         {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
    const bool ic_after[13] = {false, false, true, false, true, false, true, false, true, false, false, true, false};
    x = b.conv_bn_relu("segs.0.layers.1", x, 32, 3, 1, 1);
    int seg = 0, layer = 2;
    auto name = [&](int i) { return "segs." + std::to_string(seg) + ".layers." + std::to_string(i); };
    for (int i = 0; i < 13; ++i) {
        const std::string n = name(layer++);
        x = b.conv(n + ".0", x, x.c, 3, cfg[i].stride, 1, static_cast<int>(x.c));
        x = b.batch_norm(n + ".1", x);
        x = b.relu(n + ".2", x);
        x = b.conv(n + ".3", x, cfg[i].out, 1, 1, 0);
        x = b.batch_norm(n + ".4", x);
        x = b.relu(n + ".5", x);
        if (ic_after[i]) {
            b.add_exit(b.ic_head("segs." + std::to_string(seg) + ".ic", x, args.num_classes));
            ++seg;
            layer = 0;
        }
    }
    x = b.avg_pool(name(layer), x, static_cast<int>(x.h));
    x = b.flatten(name(layer + 1), x);
    b.add_exit(b.linear(name(layer + 2), x, args.num_classes).node);
}

}  // namespace engine::zoo
