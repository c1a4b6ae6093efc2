// Loads a model through the installed package and runs one image with early exit; prints the exit
// and exits non-zero unless the result is a valid class at a valid exit.
#include <cstdio>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/plan.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: consumer MODEL\n");
        return 2;
    }
    try {
        engine::Model model = engine::load_model(argv[1]);
        auto backend = engine::make_backend(engine::default_backend_name(), 1);
        engine::Plan plan(model, *backend, 1);
        std::vector<int64_t> dims = model.graph.nodes[model.graph.inputs.at(0)].input_dims;
        dims[0] = 1;
        std::vector<float> image(engine::Shape(dims).numel(), 0.5f);
        engine::SampleResult r;
        plan.run_early(image.data(), 1, model.thresholds.data(), &r);
        std::printf("class %d exit %d of %d\n", r.cls, r.exit, model.num_exits());
        return r.cls >= 0 && r.exit >= 0 && r.exit < model.num_exits() ? 0 : 1;
    } catch (const engine::Error& e) {  // thrown inside libengine.so, caught here: its type is exported
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
}
