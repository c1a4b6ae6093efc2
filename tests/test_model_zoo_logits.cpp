// The built ResNet-56 and MobileNet with the shared PyTorch weights loaded reproduce PyTorch's
// logits (../shared/models/*.reference.safetensors) on every backend: an end-to-end check of the
// builders' wiring (ReLU placement, shortcuts, IC heads, pooling) against an independent framework.
#include <doctest/doctest.h>

#include "engine/backend.h"
#include "engine/plan.h"
#include "engine/safetensors.h"
#include "engine/model_zoo.h"
#include "test_util.h"

using namespace engine;

TEST_CASE("built models with the shared weights match PyTorch's logits per exit") {
    if (!test::have_shared("model zoo logits")) return;
    const std::string dir = test::shared_dir() + "/models/";
    const int n = 16;
    for (std::string arch : {"resnet56", "mobilenet"}) {
        Model m = build_model(arch, 10, 32, 0);
        load_pytorch_state(m, dir + arch + "_s1.safetensors");
        auto ref = read_safetensors(dir + arch + "_s1.reference.safetensors");
        const Tensor& images = ref.at("images");
        for (std::string backend_name : {"ref", "native"}) {
            INFO(arch << " on " << backend_name);
            auto backend = make_backend(backend_name);
            Plan plan(m, *backend, n);
            // The executor's segment-wise MAC count and the builders' graph walk agree.
            CHECK(plan.macs_to_exit() == exit_macs(m.graph));
            plan.run_all(images.data(), n);
            for (int k = 0; k < m.num_exits(); ++k) {
                const Tensor& want = ref.at("exit" + std::to_string(k));
                TensorView got = plan.exit_logits(k);
                REQUIRE(got.shape == Shape{n, 10});
                double err = relative_error(got.data, want.data(), n * 10);
                INFO("exit " << k << ": relative error " << err);
                CHECK(err <= 1e-4);
            }
        }
    }
}
