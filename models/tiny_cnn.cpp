// The "tiny" net: the smallest graph that still has every op the SDN models use (normalisation,
// Conv, BatchNorm, ReLU, a residual Add, MixedPool, Flatten, Gemm, GlobalAvgPool) and 3 exits,
// for unit tests and gradient checks. ("small" is a ResNet-SDN: resnet.cpp.)
#include "archs.h"

namespace engine::zoo {

void build_tiny(NetBuilder& b, Feat x, const ArchArgs& args) {
    x = b.conv_bn_relu("segs.0.layers.1", x, 8, 3, 1, 1);
    x = b.basic_block("segs.0.layers.2", x, 8, 1);
    x = b.relu("segs.0.layers.3", x);
    b.add_exit(b.ic_head("segs.0.ic", x, args.num_classes));
    x = b.conv_bn_relu("segs.1.layers.0", x, 16, 3, 2, 1);
    b.add_exit(b.ic_head("segs.1.ic", x, args.num_classes));
    x = b.global_avg_pool("segs.2.layers.0", x);
    x = b.flatten("segs.2.layers.1", x);
    b.add_exit(b.linear("segs.2.layers.2", x, args.num_classes).node);
}

}  // namespace engine::zoo
