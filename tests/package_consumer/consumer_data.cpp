// Reads a CIFAR-10 test batch through engine::train (the data readers) and prints its size; a
// missing folder must come back as an engine::Error naming it.
#include <cstdio>

#include "engine/dataset.h"
#include "engine/error.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: consumer_data DIR\n");
        return 2;
    }
    try {
        const engine::Dataset d = engine::load_dataset_dir(argv[1], false, 10);
        std::printf("%lld images, %d classes\n", (long long)d.size(), d.num_classes);
        return d.size() == 10 ? 0 : 1;
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "consumer_data: %s\n", e.what());
        return 1;
    }
}
