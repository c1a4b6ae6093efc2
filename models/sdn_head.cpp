// The internal classifier of Shallow-Deep Networks (Kaya et al., 2019), shared by every arch:
// for a feature map of side s >= 4, mixed pooling alpha*max + (1-alpha)*avg with kernel and
// stride s/4 (so 4x4 when s is a multiple of 4, floor(s/(s/4)) otherwise, as SDN's formula),
// then flatten and one linear layer; for s < 4 only flatten and the linear layer. With a kernel
// of 1 (4 <= s < 8) the mixed pooling is the identity and is left out, as in the shared ONNX.
#include "net_builder.h"

#include "engine/error.h"

namespace engine::zoo {

int NetBuilder::ic_head(const std::string& prefix, Feat x, int num_classes) {
    check(x.h == x.w, "model builder: " + prefix + ": internal classifier needs a square feature map");
    // Every head owns an alpha, as in the shared PyTorch models, so that state dicts map one to
    // one; it only takes part where the pooling does something (kernel > 1: sides of 8 and more).
    int alpha = parameter(prefix + ".alpha", Shape{1}, true, 0.5f);
    const int k = static_cast<int>(x.h / 4);
    if (k > 1) {
        Attrs a;
        a.kernel[0] = a.kernel[1] = a.stride[0] = a.stride[1] = k;
        int pooled = graph_.add_op(Op::MixedPool, prefix + ".pool", {x.node, alpha}, a);
        x = {pooled, x.c, x.h / k, x.w / k};
    }
    Feat flat = flatten(prefix + ".flatten", x);
    return linear(prefix + ".fc", flat, num_classes).node;
}

}  // namespace engine::zoo
