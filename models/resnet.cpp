// SDN ResNet (ResNet-56 with 9 blocks per stage; the "small" net with 2), following the shared
// models' module tree: segment k is "segs.<k>.layers.<i>" with a basic block at each even i and
// its post-Add ReLU at the odd i after it, and the IC "segs.<k>.ic" reading that ReLU's output.
#include <algorithm>

#include "archs.h"

namespace engine::zoo {

void build_resnet_sdn(NetBuilder& b, Feat x, const ArchArgs& args, int blocks_per_stage,
                      const std::vector<int>& ic_after) {
    // Tiny-ImageNet sized inputs: a stride-2 first conv brings 64x64 to the CIFAR 32x32 (as SDN).
    const int stem_stride = args.image_size >= 64 ? 2 : 1;
    x = b.conv_bn_relu("segs.0.layers.1", x, 16, 3, stem_stride, 1);
    int seg = 0, layer = 2, block = 0;
    auto name = [&](int i) { return "segs." + std::to_string(seg) + ".layers." + std::to_string(i); };
    const int widths[3] = {16, 32, 64};
    for (int stage = 0; stage < 3; ++stage) {
        for (int i = 0; i < blocks_per_stage; ++i) {
            int stride = stage > 0 && i == 0 ? 2 : 1;
            x = b.basic_block(name(layer), x, widths[stage], stride);
            x = b.relu(name(layer + 1), x);
            layer += 2;
            ++block;
            if (std::find(ic_after.begin(), ic_after.end(), block) != ic_after.end()) {
                b.add_exit(b.ic_head("segs." + std::to_string(seg) + ".ic", x, args.num_classes));
                ++seg;
                layer = 0;
            }
        }
    }
    x = b.global_avg_pool(name(layer), x);
    x = b.flatten(name(layer + 1), x);
    b.add_exit(b.linear(name(layer + 2), x, args.num_classes).node);
}

}  // namespace engine::zoo
