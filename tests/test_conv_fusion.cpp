// The native direct 3x3 convolution and the inference fusion of conv epilogues (BatchNorm,
// residual Add, ReLU), each against the reference loops or the unfused plan.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "engine/model_zoo.h"
#include "op_cases.h"
#include "unfused_native.h"

using namespace engine;

namespace {

// The native backend, on one thread and on two, gives the reference backend's output for inputs.
void check_native_matches(const Model& m, Backend& ref, const std::vector<Tensor>& inputs) {
    const Tensor want = test::run_inference(m, ref, inputs);
    for (int threads : {1, 2}) {
        CAPTURE(threads);
        auto cpu = make_backend("native", threads);
        const Tensor got = test::run_inference(m, *cpu, inputs);
        CHECK(relative_error(got.data(), want.data(), want.numel()) <= 1e-5);
    }
}

}  // namespace

TEST_CASE("direct 3x3 convolution matches the reference, forward and backward, and so does its fallback") {
    auto ref = make_backend("ref");
    std::vector<test::OpCase> cases;
    // Widths 8 (a tile spans two rows), 16 and 32; channel counts off multiples of 6; a lone last segment (8x3).
    for (Shape x : {Shape{1, 3, 8, 8}, Shape{2, 7, 16, 16}, Shape{1, 16, 32, 32}, Shape{1, 5, 3, 8}})
        for (int64_t k : {1, 4, 13})
            for (bool bias : {true, false}) {
                std::vector<Shape> shapes{x, Shape{k, x[1], 3, 3}};
                if (bias) shapes.push_back(Shape{k});
                cases.push_back({"conv3x3_" + x.str() + "_k" + std::to_string(k) + (bias ? "_bias" : ""), Op::Conv,
                                 test::conv_attrs(3, 1, 1), shapes});
            }
    // Stride 2: output widths 8 (a tile spans two rows) and 16.
    for (Shape x : {Shape{1, 6, 16, 16}, Shape{2, 5, 32, 32}, Shape{1, 3, 16, 32}})
        for (bool bias : {true, false}) {
            std::vector<Shape> shapes{x, Shape{7, x[1], 3, 3}};
            if (bias) shapes.push_back(Shape{7});
            cases.push_back(
                {"conv3x3_stride2_" + x.str() + (bias ? "_bias" : ""), Op::Conv, test::conv_attrs(3, 2, 1), shapes});
        }
    // The im2col + GEMM fallback: stride 2 with an output width not a multiple of 8, a width not a multiple of 8.
    cases.push_back({"conv3x3_stride2_width12",
                     Op::Conv,
                     test::conv_attrs(3, 2, 1),
                     {Shape{1, 6, 12, 12}, Shape{7, 6, 3, 3}, Shape{7}}});
    cases.push_back(
        {"conv3x3_width12", Op::Conv, test::conv_attrs(3, 1, 1), {Shape{2, 4, 12, 12}, Shape{5, 4, 3, 3}, Shape{5}}});
    // Its batch-1 split on two threads: by output channels where they outnumber the pixels (3x3 and
    // 1x1), by pixels otherwise (above); and its row-vectorised kernel on 2x2 outputs, where the
    // threads' runs of (sample, row panel) pairs start and end inside a sample.
    cases.push_back(
        {"conv3x3_4x4_rows", Op::Conv, test::conv_attrs(3, 1, 1), {Shape{1, 8, 4, 4}, Shape{20, 8, 3, 3}, Shape{20}}});
    cases.push_back(
        {"conv1x1_4x4_rows", Op::Conv, test::conv_attrs(1, 1, 0), {Shape{1, 16, 4, 4}, Shape{40, 16, 1, 1}}});
    cases.push_back({"conv3x3_2x2_narrow",
                     Op::Conv,
                     test::conv_attrs(3, 1, 1),
                     {Shape{3, 8, 2, 2}, Shape{30, 8, 3, 3}, Shape{30}}});
    cases.push_back(
        {"conv3x3_stride2_narrow", Op::Conv, test::conv_attrs(3, 2, 1), {Shape{1, 5, 4, 4}, Shape{7, 5, 3, 3}}});
    for (int threads : {1, 2}) {
        auto cpu = make_backend("native", threads);
        for (const auto& c : cases) {
            CAPTURE(threads);
            CAPTURE(c.label);
            test::check_same_result(test::run_op_case(c, *ref, 5), test::run_op_case(c, *cpu, 5), 1e-5);
        }
    }
}

TEST_CASE("Winograd F(2,3) and F(4,3) convolutions of inference plans match the reference, on one thread and two") {
    auto ref = make_backend("ref");
    // F(4,3) on 16x16 (four tiles a row) and 32x32 (eight); on 8x8 with output channels a multiple
    // of 8, F(4,3) vectorised over channels (8: one partial block of 24; 40: a full one and a
    // partial one); F(2,3) on 8x8 otherwise (four tiles a row) and on 8x16 (eight); output channels
    // off multiples of 6; batch 1 (the threads split each phase) and 3 (they share out samples);
    // with and without bias.
    for (Shape x :
         {Shape{1, 3, 8, 8}, Shape{3, 7, 16, 16}, Shape{1, 16, 32, 32}, Shape{3, 13, 8, 16}, Shape{2, 20, 8, 8}})
        for (int64_t k : {1, 4, 8, 13, 40})
            for (bool bias : {true, false}) {
                CAPTURE(x.str());
                CAPTURE(k);
                CAPTURE(bias);
                const Model m = test::conv_block_model(x, Shape{k, x[1], 3, 3}, bias, false, false, 3);
                check_native_matches(m, *ref, {test::random_tensor(x, 4, -1, 1)});
            }
}

TEST_CASE("1x1 convolutions on packed weights match the reference, with their epilogues, on one thread and two") {
    auto ref = make_backend("ref");
    // 2x2 and 1x3 planes take the narrow kernel (37 output channels: a partial row panel).
    for (Shape x : {Shape{1, 20, 4, 4}, Shape{3, 300, 2, 2}, Shape{2, 9, 1, 3}, Shape{1, 16, 32, 32}})
        for (bool residual : {false, true}) {
            CAPTURE(x.str());
            CAPTURE(residual);
            const Model m = test::conv_block_model(x, Shape{37, x[1], 1, 1}, true, residual, true, 5);
            std::vector<Tensor> inputs{test::random_tensor(x, 6, -1, 1)};
            if (residual) inputs.push_back(test::random_tensor(Shape{x[0], 37, x[2], x[3]}, 7, -1, 1));
            check_native_matches(m, *ref, inputs);
        }
}

TEST_CASE("depthwise convolutions apply their fused residual and ReLU, on one thread and two") {
    auto ref = make_backend("ref");
    // 8-wide rows, 4-wide rows (MobileNet's 4x4 planes) and scalar tails.
    for (Shape x : {Shape{1, 8, 8, 8}, Shape{2, 6, 4, 4}, Shape{1, 3, 5, 7}})
        for (bool residual : {false, true}) {
            CAPTURE(x.str());
            CAPTURE(residual);
            const Model m = test::conv_block_model(x, Shape{x[1], 1, 3, 3}, true, residual, true, 9, int(x[1]));
            std::vector<Tensor> inputs{test::random_tensor(x, 10, -1, 1)};
            if (residual) inputs.push_back(test::random_tensor(x, 11, -1, 1));
            check_native_matches(m, *ref, inputs);
        }
}

TEST_CASE("conv backward adds to gradients already there, on the direct 3x3 input-gradient path and off it") {
    // Called on the backends directly, with every gradient pre-filled: a plan starts them at zero.
    struct Case {
        Shape x;
        int64_t k;
        int stride;
        bool depthwise = false;  // groups = channels = k
    };
    std::vector<Case> cases;
    // {2, 16, 8, 8}: the input gradient (16 channels out, 8x8) takes Winograd F(4,3) vectorised over channels.
    for (Shape x :
         {Shape{2, 3, 8, 8}, Shape{3, 13, 16, 16}, Shape{1, 16, 32, 32}, Shape{2, 16, 3, 8}, Shape{2, 16, 8, 8}})
        for (int64_t k : {3, 13, 16}) cases.push_back({x, k, 1});
    // Winograd weight gradient: 8 channels (one vector), 24 (16 + 8) and 24 output channels (rows of
    // 6); chunks of 4 samples on 16x16 planes and of 16 on 8x8 ones, with a remainder per thread.
    cases.push_back({Shape{5, 8, 16, 16}, 24, 1});
    cases.push_back({Shape{18, 24, 8, 8}, 8, 1});
    cases.push_back({Shape{3, 32, 32, 32}, 16, 1});
    // On AVX-512 (channel counts multiples of 16): 48 channels in (two vectors, then one), 48 out
    // (three 16-row blocks beside one vector).
    cases.push_back({Shape{2, 48, 8, 8}, 32, 1});
    cases.push_back({Shape{2, 16, 16, 16}, 48, 1});
    cases.push_back({Shape{2, 6, 16, 16}, 7, 2});  // stride 2: the GEMM input gradient
    cases.push_back({Shape{2, 4, 12, 12}, 5, 1});  // width 12: the GEMM path throughout
    // Depthwise on small planes (on AVX-512, one lane per channel and output pixel): output planes of
    // 16, 4 and 8 pixels (one, four and two channels a vector), stride 1 and 2, a thread range of 2
    // samples and one of 3; and a plane kernel's 8x8.
    for (const Case& c :
         {Case{Shape{2, 8, 4, 4}, 8, 1, true}, Case{Shape{3, 8, 2, 2}, 8, 1, true}, Case{Shape{1, 6, 2, 4}, 6, 1, true},
          Case{Shape{3, 5, 8, 8}, 5, 2, true}, Case{Shape{2, 8, 4, 4}, 8, 2, true}, Case{Shape{2, 6, 4, 8}, 6, 2, true},
          Case{Shape{5, 4, 4, 4}, 4, 1, true}, Case{Shape{2, 3, 8, 8}, 3, 1, true}})
        cases.push_back(c);
    auto ref = make_backend("ref");
    std::map<std::pair<size_t, int>, Tensor> avx2_gx;  // (case, threads): the AVX2 path's input gradient
    // The backend's instruction set, not the environment's, picks the backward kernels and sizes their scratch.
    std::vector<native::Isa> isas{native::Isa::avx2};
    if (native::cpu_has_avx512()) isas.push_back(native::Isa::avx512);
    for (native::Isa isa : isas)
        for (int threads : {1, 2}) {
            native::NativeBackend cpu(threads, {native::KernelMode::tuned, isa});
            for (size_t ci = 0; ci < cases.size(); ++ci) {
                const Case& c = cases[ci];
                CAPTURE(c.x.str());
                CAPTURE(c.k);
                CAPTURE(threads);
                CAPTURE(native::isa_name(isa));
                Node node;
                node.op = Op::Conv;
                node.attrs = test::conv_attrs(3, c.stride, 1, c.depthwise ? int(c.k) : 1);
                const int64_t oh = (c.x[2] - 1) / c.stride + 1, ow = (c.x[3] - 1) / c.stride + 1;
                const Shape shapes[] = {c.x, Shape{c.k, c.depthwise ? 1 : c.x[1], 3, 3}, Shape{c.k}},
                            out{c.x[0], c.k, oh, ow};
                Tensor x = test::random_tensor(shapes[0], 1), w = test::random_tensor(shapes[1], 2),
                       b = test::random_tensor(shapes[2], 3), gy = test::random_tensor(out, 4), y(out);
                auto run = [&](Backend& backend) {
                    std::vector<Tensor> grads;
                    for (int i = 0; i < 3; ++i) grads.push_back(test::random_tensor(shapes[i], 10 + i));  // nonzero
                    constexpr size_t kSentinels = 64;
                    std::vector<float> scratch(backend.scratch_floats(node, shapes, 3, out) + kSentinels, 12345.0f);
                    TensorView in[] = {{x.data(), shapes[0]}, {w.data(), shapes[1]}, {b.data(), shapes[2]}};
                    TensorView gin[] = {
                        {grads[0].data(), shapes[0]}, {grads[1].data(), shapes[1]}, {grads[2].data(), shapes[2]}};
                    OpArgs fwd{node, in, 3, {y.data(), out}, scratch.data(), true, 7};
                    backend.backward(GradArgs{fwd, {gy.data(), out}, gin});
                    for (size_t i = scratch.size() - kSentinels; i < scratch.size(); ++i)
                        REQUIRE(scratch[i] == 12345.0f);
                    return grads;
                };
                std::vector<Tensor> want = run(*ref), got = run(cpu);
                for (int i = 0; i < 3; ++i) {
                    CAPTURE(i);
                    CHECK(relative_error(got[i].data(), want[i].data(), want[i].numel()) <= 1e-5);
                }
                // The depthwise input gradient is the same to the bit on either instruction set.
                if (!c.depthwise) continue;
                if (isa == native::Isa::avx2)
                    avx2_gx.emplace(std::make_pair(ci, threads), std::move(got[0]));
                else
                    CHECK(std::equal(got[0].data(), got[0].data() + got[0].numel(),
                                     avx2_gx.at(std::make_pair(ci, threads)).data()));
            }
        }
}

TEST_CASE("fused conv epilogues (bias, residual, ReLU) match the unfused reference") {
    auto ref = make_backend("ref");
    struct Case {
        Shape x;
        int64_t k;
        int stride;
    };
    for (Case c : {Case{Shape{1, 16, 32, 32}, 16, 1}, Case{Shape{2, 5, 16, 16}, 5, 1}, Case{Shape{1, 7, 8, 8}, 7, 1},
                   Case{Shape{2, 3, 8, 8}, 13, 1}, Case{Shape{1, 4, 7, 7}, 4, 1}})
        for (bool bias : {true, false})
            for (bool residual : {true, false})
                for (bool relu : {true, false})
                    for (int threads : {1, 2}) {
                        CAPTURE(c.x.str());
                        CAPTURE(c.k);
                        CAPTURE(bias);
                        CAPTURE(residual);
                        CAPTURE(relu);
                        CAPTURE(threads);
                        Model m = test::conv_block_model(c.x, Shape{c.k, c.x[1], 3, 3}, bias, residual, relu, 3);
                        std::vector<Tensor> inputs{test::random_tensor(c.x, 4)};
                        if (residual) inputs.push_back(test::random_tensor(Shape{c.x[0], c.k, c.x[2], c.x[3]}, 5));
                        // Oracle: the reference loops, node by node (a keep_all plan is never fused).
                        Plan unfused(m, *ref, int(c.x[0]), /*keep_all=*/true);
                        std::vector<const float*> ptrs;
                        for (const Tensor& t : inputs) ptrs.push_back(t.data());
                        unfused.run_all(ptrs.data(), int(c.x[0]));
                        Tensor want = test::copy_of(unfused.exit_logits(0));
                        auto cpu = make_backend("native", threads);
                        Tensor got_ref = test::run_inference(m, *ref, inputs),
                               got = test::run_inference(m, *cpu, inputs);
                        CHECK(relative_error(got_ref.data(), want.data(), want.numel()) == 0.0);
                        CHECK(relative_error(got.data(), want.data(), want.numel()) <= 1e-5);
                    }
}

TEST_CASE("an inference plan fuses conv epilogues and gives the unfused plan's logits") {
    Model model = build_model("small", 10, 32, 1);  // unfolded BatchNorm, residual blocks, four exits
    const int n = 4;
    Tensor x = test::random_tensor(Shape{n, 3, 32, 32}, 8, 0, 1);
    auto native = make_backend("native", 1);
    test::UnfusedNative unfused_native(1);
    Plan fused(model, *native, n), unfused(model, unfused_native, n), keep(model, *native, n, /*keep_all=*/true);
    fused.run_all(x.data(), n);
    unfused.run_all(x.data(), n);
    keep.run_all(x.data(), n);
    size_t fused_nodes = 0, unfused_nodes = 0;
    for (int k = 0; k < model.num_exits(); ++k) {
        CAPTURE(k);
        TensorView a = fused.exit_logits(k), b = unfused.exit_logits(k), c = keep.exit_logits(k);
        REQUIRE(a.numel() == b.numel());
        CHECK(relative_error(a.data, b.data, a.numel()) <= 1e-5);
        CHECK(relative_error(c.data, b.data, c.numel()) == 0.0);
        // Training plans fold ReLUs into the BatchNorms before them: the unfused plan's nodes, fewer.
        const std::vector<int>&kept = keep.segments()[k], &all = unfused.segments()[k];
        CHECK(kept.size() < all.size());
        for (int i : kept) CHECK(std::find(all.begin(), all.end(), i) != all.end());
        fused_nodes += fused.segments()[k].size();
        unfused_nodes += unfused.segments()[k].size();
    }
    CHECK(fused_nodes < unfused_nodes);
    CHECK(fused.macs_to_exit() == unfused.macs_to_exit());
    CHECK_THROWS_AS(fused.run_all(x.data(), n, /*training=*/true), Error);
}

TEST_CASE(
    "a training step with ReLUs and residual Adds fused into BatchNorm and Add gives the unfused plan's values and "
    "gradients, to the bit") {
    const int n = 6;
    Tensor x = test::random_tensor(Shape{n, 3, 32, 32}, 9, 0, 1);
    for (int threads : {1, 2}) {
        CAPTURE(threads);
        // Two copies of one model: each plan's training forward moves its own running statistics.
        Model a = build_model("small", 10, 32, 1), b = a;
        auto native = make_backend("native", threads);
        test::UnfusedNative unfused_native(threads);
        Plan fused(a, *native, n, true), unfused(b, unfused_native, n, true);
        std::vector<Tensor> seeds;
        std::vector<const float*> seed_ptrs;
        fused.run_all(x.data(), n, /*training=*/true, 3);
        unfused.run_all(x.data(), n, true, 3);
        for (int k = 0; k < a.num_exits(); ++k) {
            seeds.push_back(test::random_tensor(fused.exit_logits(k).shape, 30 + k));
            seed_ptrs.push_back(seeds.back().data());
            TensorView p = fused.exit_logits(k), q = unfused.exit_logits(k);
            CHECK(relative_error(p.data, q.data, p.numel()) == 0.0);
        }
        fused.backward(seed_ptrs.data(), true, true, 3);
        unfused.backward(seed_ptrs.data(), true, true, 3);
        TensorView gx = fused.input_grad(), want_gx = unfused.input_grad();
        CHECK(relative_error(gx.data, want_gx.data, gx.numel()) == 0.0);
        int params = 0, into_batchnorm = 0, into_add = 0, adds_into_batchnorm = 0;
        for (size_t i = 0; i < a.graph.nodes.size(); ++i) {
            const Node& node = a.graph.nodes[i];
            if (node.op == Op::Relu) {
                const Op before = a.graph.nodes[node.inputs[0]].op;
                into_batchnorm += before == Op::BatchNorm;
                into_add += before == Op::Add;
                CHECK_THROWS_AS(fused.value(node.inputs[0]), Error);  // the absorbed node's value is not kept
            }
            if (node.op == Op::Add) {  // one BatchNorm before it absorbs it (a shortcut may have another)
                int batchnorms = 0, absorbed = 0;
                for (int j : node.inputs) {
                    if (a.graph.nodes[j].op != Op::BatchNorm) continue;
                    ++batchnorms;
                    try {
                        fused.value(j);
                    } catch (const Error&) {
                        ++absorbed;
                    }
                }
                if (batchnorms == 0) continue;
                CHECK(absorbed == 1);
                ++adds_into_batchnorm;
            }
            if (node.op != Op::Constant) continue;
            CAPTURE(node.name);
            CHECK(relative_error(node.value.data(), b.graph.nodes[i].value.data(), node.value.numel()) == 0.0);
            if (!node.trainable) continue;
            TensorView g = fused.param_grad(int(i)), want = unfused.param_grad(int(i));
            CHECK(relative_error(g.data, want.data, g.numel()) == 0.0);
            ++params;
        }
        CHECK(params > 20);
        CHECK(into_batchnorm > 5);
        CHECK(into_add > 3);
        CHECK(adds_into_batchnorm > 3);
        // The same keep-all plans in evaluation (running statistics), as fp_gen's crafting runs them.
        fused.run_all(x.data(), n, /*training=*/false);
        unfused.run_all(x.data(), n, false);
        for (int k = 0; k < a.num_exits(); ++k) {
            TensorView p = fused.exit_logits(k), q = unfused.exit_logits(k);
            CHECK(relative_error(p.data, q.data, p.numel()) == 0.0);
        }
    }
}

TEST_CASE("a convolution that is an exit keeps its own output") {
    // Exit 0 is the convolution itself, exit 1 its ReLU: fusing the ReLU would change exit 0.
    Model m = test::conv_block_model(Shape{1, 2, 8, 8}, Shape{3, 2, 3, 3}, true, false, true, 6);
    const int conv = m.graph.nodes[m.graph.outputs[0]].inputs[0];
    m.graph.outputs = {conv, m.graph.outputs[0]};
    m.thresholds = {1.0f, 1.0f};
    Tensor x = test::random_tensor(Shape{1, 2, 8, 8}, 7);
    auto native = make_backend("native", 1);
    Plan plan(m, *native, 1);
    plan.run_all(x.data(), 1);
    TensorView y = plan.exit_logits(0), r = plan.exit_logits(1);
    bool negative = false;
    for (int64_t i = 0; i < y.numel(); ++i) {
        negative |= y[i] < 0;
        CHECK(r[i] == (y[i] > 0 ? y[i] : 0.0f));
    }
    CHECK(negative);
}
