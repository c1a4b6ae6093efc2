// Internal to models/: one builder per architecture family. Each receives the builder with the
// normalised input already in place as "segs.0.layers.0" and adds the rest, exits included.
#pragma once
#include "net_builder.h"

namespace engine::zoo {

struct ArchArgs {
    int num_classes = 10;
    int image_size = 32;
    int in_channels = 3;
};

// blocks_per_stage basic blocks in each of three stages (16/32/64 channels); an IC after each
// block listed in ic_after (1-based over all blocks); global average pool and a linear layer.
void build_resnet_sdn(NetBuilder& b, Feat x, const ArchArgs& args, int blocks_per_stage,
                      const std::vector<int>& ic_after);
void build_vgg16_sdn(NetBuilder& b, Feat x, const ArchArgs& args);
void build_mobilenet_sdn(NetBuilder& b, Feat x, const ArchArgs& args);
void build_tiny(NetBuilder& b, Feat x, const ArchArgs& args);

}  // namespace engine::zoo
