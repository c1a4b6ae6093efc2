// The native backend's choice of convolution kernel: every candidate kernel, on AVX2 and (where the
// CPU has it) AVX-512, against the reference loops; the fixed rule under ENGINE_KERNELS=fixed; the
// per-CPU cache file of tuned choices, and a corrupt or foreign one ignored; the packed GEMM's sums
// in the order of its kernels, to the bit; the classifier heads' dot products in their one order.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "engine/aligned_vector.h"
#include "engine/error.h"
#include "native/native_backend.h"
#include "native/native_depthwise.h"
#include "native/native_gemm.h"
#include "native/native_linear.h"
#include "op_cases.h"

using namespace engine;
using native::ConvKernel;
using native::Isa;
using native::KernelMode;
using native::NativeBackend;

namespace {

struct Case {
    Shape x, w;
    int stride = 1;
    bool residual_relu = false;
};

std::vector<Tensor> inputs_of(const Model& m, uint32_t seed) {
    std::vector<Tensor> in;
    for (int i : m.graph.inputs) in.push_back(test::random_tensor(Shape(m.graph.nodes[i].input_dims), seed + i));
    return in;
}

// The ResNet-56 shapes (its first convolution, three stages, the stride-2 and 1x1 convolutions
// between them), and shapes off the kernels' block sizes: channels off multiples of 6, 8, 16 and 24,
// eight-wide planes, planes of odd sizes and of fewer pixels than a vector (stride 1 and 2), and a
// plane 64 wide, whose Winograd tile groups read their neighbours' columns.
std::vector<Case> cases() {
    return {{Shape{1, 16, 32, 32}, Shape{16, 16, 3, 3}},
            {Shape{2, 32, 16, 16}, Shape{32, 32, 3, 3}, 1, true},
            {Shape{1, 64, 8, 8}, Shape{64, 64, 3, 3}, 1, true},
            {Shape{1, 64, 8, 8}, Shape{64, 64, 3, 3}},
            {Shape{3, 20, 8, 8}, Shape{40, 20, 3, 3}},
            {Shape{1, 24, 8, 8}, Shape{48, 24, 3, 3}},
            {Shape{1, 13, 8, 16}, Shape{13, 13, 3, 3}},
            {Shape{1, 7, 16, 16}, Shape{21, 7, 3, 3}},
            {Shape{1, 16, 32, 32}, Shape{32, 16, 3, 3}, 2},
            {Shape{1, 16, 32, 32}, Shape{32, 16, 1, 1}, 1},
            {Shape{2, 32, 16, 16}, Shape{64, 32, 3, 3}, 2, true},
            {Shape{2, 13, 15, 9}, Shape{21, 13, 3, 3}, 2, true},
            {Shape{1, 5, 7, 11}, Shape{9, 5, 3, 3}, 1, true},
            {Shape{1, 3, 32, 32}, Shape{16, 3, 3, 3}},
            {Shape{2, 5, 8, 64}, Shape{7, 5, 3, 3}, 1, true}};
}

// Sets an environment variable for the scope, and puts back what was there.
struct ScopedEnv {
    std::string name;
    std::optional<std::string> old;
    ScopedEnv(const char* n, const std::string& value) : name(n) {
        if (const char* v = std::getenv(n)) old = v;
        setenv(n, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (old)
            setenv(name.c_str(), old->c_str(), 1);
        else
            unsetenv(name.c_str());
    }
};

// A depthwise convolution (groups = channels, 3x3, padding 1).
struct DepthwiseCase {
    Shape x;
    int stride;
    bool residual_relu = false;
    bool avx512 = true;  // an AVX-512 kernel takes it
};

std::vector<Isa> isas() {
    std::vector<Isa> out{Isa::avx2};
    if (native::cpu_has_avx512()) out.push_back(Isa::avx512);
    return out;
}

}  // namespace

TEST_CASE("every candidate convolution kernel matches the reference, on AVX2 and on AVX-512 where the CPU has it") {
    if (!native::cpu_has_avx512()) MESSAGE("this CPU has no AVX-512: only the AVX2 kernels are checked");
    auto ref = make_backend("ref");
    int avx512_runs = 0;
    for (const Case& c : cases()) {
        const Model m = test::conv_block_model(c.x, c.w, true, c.residual_relu, c.residual_relu, 11, 1, c.stride);
        const auto in = inputs_of(m, 5);
        const Tensor want = test::run_inference(m, *ref, in);
        const Shape y{c.x[0], c.w[0], c.x[2] / c.stride, c.x[3] / c.stride};
        const Attrs a = test::conv_attrs(int(c.w[2]), c.stride, int(c.w[2] / 2));
        for (Isa isa : isas())
            for (ConvKernel k : native::conv_kernel_candidates(a, c.x, c.w, y, isa))
                for (int threads : {1, 2}) {
                    CAPTURE(c.x.str());
                    CAPTURE(c.w.str());
                    CAPTURE(native::conv_kernel_name(k));
                    CAPTURE(threads);
                    NativeBackend native(threads, {KernelMode::fixed, isa});
                    native.force_conv_kernel(k);
                    const Tensor got = test::run_inference(m, native, in);
                    CHECK(native.last_conv_kernel() == k);
                    CHECK(relative_error(got.data(), want.data(), want.numel()) <= 1e-5);
                    avx512_runs += native::conv_kernel_avx512(k);
                }
    }
    if (native::cpu_has_avx512()) CHECK(avx512_runs > 0);
}

TEST_CASE("the AVX-512 depthwise kernels give the AVX2 kernel's results to the bit, and the reference's") {
    if (!native::cpu_has_avx512()) {
        MESSAGE("this CPU has no AVX-512: the AVX-512 depthwise kernels are not checked");
        return;
    }
    auto ref = make_backend("ref");
    // Output planes of 16, 8 and 4 pixels (one, two and four channels a vector); output rows of 8, 16
    // and 32 pixels (a ymm, a zmm, two), odd heights; stride 1 and 2; batches of one and more; and
    // planes neither takes (rows of 12 and 64).
    const std::vector<DepthwiseCase> shapes = {
        {Shape{2, 12, 4, 4}, 1, true, true},   {Shape{3, 5, 8, 8}, 2, false, true},
        {Shape{1, 8, 2, 4}, 1, true, true},    {Shape{2, 6, 4, 8}, 2, false, true},
        {Shape{3, 16, 2, 2}, 1, true, true},   {Shape{1, 8, 4, 4}, 2, true, true},
        {Shape{2, 4, 2, 2}, 1, false, true},   {Shape{1, 3, 8, 8}, 1, false, true},
        {Shape{2, 5, 7, 8}, 1, true, true},    {Shape{1, 4, 16, 16}, 1, true, true},
        {Shape{2, 3, 16, 16}, 2, false, true}, {Shape{1, 3, 32, 32}, 2, true, true},
        {Shape{1, 2, 9, 32}, 1, false, true},  {Shape{2, 2, 32, 32}, 1, true, true},
        {Shape{1, 2, 64, 64}, 2, false, true}, {Shape{1, 3, 12, 12}, 1, false, false},
        {Shape{1, 2, 4, 64}, 1, false, false}};
    int runs = 0;
    for (const DepthwiseCase& c : shapes) {
        const int groups = int(c.x[1]);
        const Shape w{c.x[1], 1, 3, 3};
        const Model m = test::conv_block_model(c.x, w, true, c.residual_relu, c.residual_relu, 51, groups, c.stride);
        const auto in = inputs_of(m, 13);
        const Tensor want = test::run_inference(m, *ref, in);
        const Shape y{c.x[0], c.x[1], c.x[2] / c.stride, c.x[3] / c.stride};
        const auto candidates =
            native::conv_kernel_candidates(test::conv_attrs(3, c.stride, 1, groups), c.x, w, y, Isa::avx512);
        CAPTURE(c.x.str());
        CAPTURE(c.stride);
        CHECK(std::count(candidates.begin(), candidates.end(), ConvKernel::depthwise_512) == int(c.avx512));
        if (!c.avx512) continue;
        for (int threads : {1, 2}) {
            CAPTURE(threads);
            NativeBackend avx2(threads, {KernelMode::fixed, Isa::avx2}),
                avx512(threads, {KernelMode::fixed, Isa::avx512});
            avx512.force_conv_kernel(ConvKernel::depthwise_512);
            const Tensor plain = test::run_inference(m, avx2, in), got = test::run_inference(m, avx512, in);
            REQUIRE(avx2.last_conv_kernel() == ConvKernel::other);
            REQUIRE(avx512.last_conv_kernel() == ConvKernel::depthwise_512);
            CHECK(relative_error(got.data(), want.data(), want.numel()) <= 1e-5);
            CHECK(std::equal(got.data(), got.data() + got.numel(), plain.data()));
            ++runs;
        }
    }
    CHECK(runs == 30);
}

// The plane kernel's sums for one output of a depthwise 3x3 convolution (stride 1, padding 1): the
// bias, then each tap in order by a fused multiply-add (a tap outside the plane adds 0 x its weight),
// then the residual, then ReLU.
namespace {
float depthwise_plane_order(const Tensor& x, const Tensor& w, const Tensor& b, const float* residual, int64_t n,
                            int64_t k, int64_t oh, int64_t ow) {
    const int64_t K = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    float acc = b.data()[k];
    for (int tap = 0; tap < 9; ++tap) {
        const int64_t ih = oh + tap / 3 - 1, iw = ow + tap % 3 - 1;
        const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
        acc = std::fma(w.data()[k * 9 + tap], inside ? x.data()[((n * K + k) * H + ih) * W + iw] : 0.0f, acc);
    }
    if (residual) acc += residual[((n * K + k) * H + oh) * W + ow];
    return acc > 0.0f ? acc : 0.0f;
}
}  // namespace

TEST_CASE("the AVX2 depthwise kernels at stride 1 give the plane kernel's sums, in its order, to the bit") {
    // Small planes: 4 pixels (two channels a vector), 8 (2x4 and 4x2) and 16 (half a plane a vector).
    // Rows of 8, 16 and 32 pixels, heights that fill the eight chains or leave some over, and a single
    // row. With and without a residual, over batches whose first and last planes sit at the tensor's ends.
    const std::vector<Shape> shapes = {Shape{3, 6, 2, 2},   Shape{2, 5, 2, 4}, Shape{1, 3, 4, 2},  Shape{2, 7, 4, 4},
                                       Shape{1, 512, 4, 4}, Shape{2, 3, 8, 8}, Shape{1, 4, 5, 16}, Shape{2, 2, 32, 32},
                                       Shape{1, 3, 1, 8},   Shape{2, 3, 7, 8}};
    for (const Shape& xs : shapes)
        for (bool with_residual : {false, true})
            for (int threads : {1, 2}) {
                CAPTURE(xs.str());
                CAPTURE(with_residual);
                CAPTURE(threads);
                const Attrs a = test::conv_attrs(3, 1, 1, int(xs[1]));
                const Shape ws{xs[1], 1, 3, 3};
                const native::ConvDims d = native::conv_dims(a, xs, ws, xs);
                REQUIRE((native::depthwise_small_fits(a, d) || native::depthwise_rows_fits(a, d)));
                Tensor x = test::random_tensor(xs, 5, -1, 1), w = test::random_tensor(ws, 6, -1, 1);
                const Tensor b = test::random_tensor(Shape{xs[1]}, 7, -1, 1), r = test::random_tensor(xs, 8, -1, 1);
                Tensor y(xs);
                Attrs fused = a;
                fused.fused_relu = true;
                const float* residual = with_residual ? r.data() : nullptr;
                native::depthwise_forward(fused, TensorView{x.data(), xs}, TensorView{w.data(), ws}, b.data(), residual,
                                          TensorView{y.data(), xs}, nullptr, threads);
                int64_t wrong = 0;
                for (int64_t n = 0; n < xs[0]; ++n)
                    for (int64_t k = 0; k < xs[1]; ++k)
                        for (int64_t oh = 0; oh < xs[2]; ++oh)
                            for (int64_t ow = 0; ow < xs[3]; ++ow)
                                wrong += y.data()[((n * xs[1] + k) * xs[2] + oh) * xs[3] + ow] !=
                                         depthwise_plane_order(x, w, b, residual, n, k, oh, ow);
                CHECK(wrong == 0);
            }
    // Odd channels of 2x2 planes and stride 2 stay with the plane kernel.
    const Attrs odd = test::conv_attrs(3, 1, 1, 5), strided = test::conv_attrs(3, 2, 1, 4);
    CHECK_FALSE(native::depthwise_small_fits(
        odd, native::conv_dims(odd, Shape{1, 5, 2, 2}, Shape{5, 1, 3, 3}, Shape{1, 5, 2, 2})));
    CHECK_FALSE(native::depthwise_small_fits(
        strided, native::conv_dims(strided, Shape{1, 4, 8, 8}, Shape{4, 1, 3, 3}, Shape{1, 4, 4, 4})));
}

TEST_CASE(
    "the AVX-512 depthwise gradients of small planes: the AVX2 input gradient to the bit, the reference's weights") {
    if (!native::cpu_has_avx512()) {
        MESSAGE("this CPU has no AVX-512: the AVX-512 depthwise gradients are not checked");
        return;
    }
    // In a plan, whose input gradient starts fresh: output planes of 16, 4 and 8 pixels, stride 1 and 2.
    auto ref = make_backend("ref");
    for (const DepthwiseCase& c : {DepthwiseCase{Shape{3, 8, 4, 4}, 1}, DepthwiseCase{Shape{2, 8, 2, 2}, 1},
                                   DepthwiseCase{Shape{2, 6, 4, 8}, 2}, DepthwiseCase{Shape{3, 4, 8, 8}, 2}})
        for (int threads : {1, 2}) {
            CAPTURE(c.x.str());
            CAPTURE(threads);
            const int64_t C = c.x[1];
            const test::OpCase oc{
                "depthwise", Op::Conv, test::conv_attrs(3, c.stride, 1, int(C)), {c.x, Shape{C, 1, 3, 3}, Shape{C}}};
            NativeBackend avx2(threads, {KernelMode::fixed, Isa::avx2}),
                avx512(threads, {KernelMode::fixed, Isa::avx512});
            const test::OpResult want = test::run_op_case(oc, *ref, 17), plain = test::run_op_case(oc, avx2, 17),
                                 got = test::run_op_case(oc, avx512, 17);
            test::check_same_result(want, got, 1e-5);
            CHECK(std::equal(got.input_grad.data(), got.input_grad.data() + got.input_grad.numel(),
                             plain.input_grad.data()));
        }
}

TEST_CASE("ENGINE_NATIVE_ISA=avx2 keeps the AVX-512 kernels out; ENGINE_KERNELS=fixed keeps the fixed rule") {
    const Case c{Shape{1, 64, 8, 8}, Shape{64, 64, 3, 3}};
    const Shape y{1, 64, 8, 8};
    const Attrs a = test::conv_attrs(3, 1, 1);
    {
        ScopedEnv isa("ENGINE_NATIVE_ISA", "avx2");
        CHECK(NativeBackend(1).options().isa == Isa::avx2);
        for (ConvKernel k : native::conv_kernel_candidates(a, c.x, c.w, y, NativeBackend(1).options().isa))
            CHECK_FALSE(native::conv_kernel_avx512(k));
    }
    if (native::cpu_has_avx512()) CHECK(NativeBackend(1).options().isa == Isa::avx512);
    {
        ScopedEnv fixed("ENGINE_KERNELS", "fixed");
        NativeBackend native(1);
        CHECK(native.options().kernels == KernelMode::fixed);
        const Model m = test::conv_block_model(c.x, c.w, true, false, false, 3);
        test::run_inference(m, native, inputs_of(m, 4));
        CHECK(native.last_conv_kernel() == native::conv_kernel_fixed(a, c.x, c.w, y));
        CHECK(native.last_conv_kernel() == ConvKernel::winograd4_channels);
    }
    {
        ScopedEnv bad("ENGINE_KERNELS", "fastest");
        CHECK_THROWS_AS(make_backend("native", 1), Error);
    }
}

TEST_CASE("tuned choices are kept in the per-CPU cache file; a corrupt or foreign file is ignored, then rewritten") {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("engine_kernels_test_" + std::to_string(getpid()) + ".json"))
            .string();
    ScopedEnv env("ENGINE_KERNEL_CACHE", path);
    ScopedEnv tuned("ENGINE_KERNELS", "tuned");
    auto ref = make_backend("ref");
    const Model m = test::conv_block_model(Shape{1, 16, 16, 16}, Shape{16, 16, 3, 3}, true, true, true, 21);
    const auto in = inputs_of(m, 8);
    const Tensor want = test::run_inference(m, *ref, in);
    auto tune_and_check = [&] {
        native::kernel_cache_reset();
        NativeBackend native(1);
        const Tensor got = test::run_inference(m, native, in);
        CHECK(relative_error(got.data(), want.data(), want.numel()) <= 1e-5);
        std::ifstream f(path);
        REQUIRE(f.good());
        const nlohmann::json j = nlohmann::json::parse(f);
        CHECK(j.at("cpu") == native::cpu_model());
        REQUIRE(j.at("choices").size() == 1);
        ConvKernel k;
        CHECK(native::conv_kernel_from_name(j.at("choices").begin().value().get<std::string>(), k));
        CHECK(k == native.last_conv_kernel());
        return k;
    };
    std::filesystem::remove(path);
    tune_and_check();

    // A choice in the file is taken as it is: name a kernel the tuner would not pick by chance.
    {
        std::ifstream f(path);
        nlohmann::json j = nlohmann::json::parse(f);
        j["choices"].begin().value() = "gemm";
        std::ofstream(path) << j.dump();
    }
    native::kernel_cache_reset();
    NativeBackend native(1);
    test::run_inference(m, native, in);
    CHECK(native.last_conv_kernel() == ConvKernel::gemm);

    const int version = nlohmann::json::parse(std::ifstream(path)).at("version");
    std::ofstream(path) << "{\"format\": \"engine-native-kernels\", \"choi";  // cut short
    tune_and_check();
    std::ofstream(path) << nlohmann::json{{"format", "engine-native-kernels"},
                                          {"version", version},
                                          {"cpu", "another CPU"},
                                          {"choices", {{"anything", "gemm"}}}}
                               .dump();
    tune_and_check();
    std::ofstream(path) << nlohmann::json{{"format", "engine-native-kernels"},
                                          {"version", version},
                                          {"cpu", native::cpu_model()},
                                          {"choices", {{"anything", "fastest_kernel"}}}}
                               .dump();
    tune_and_check();
    std::ofstream(path) << nlohmann::json{{"format", "engine-native-kernels"},
                                          {"version", version - 1},
                                          {"cpu", native::cpu_model()},
                                          {"choices", {{"anything", "gemm"}}}}
                               .dump();
    tune_and_check();
    std::filesystem::remove(path);
    native::kernel_cache_reset();
}

TEST_CASE("a tuned backend gives a sample the same result, to the bit, alone and in a batch, on one thread and two") {
    ScopedEnv tuned("ENGINE_KERNELS", "tuned");
    const Model m3 = test::conv_block_model(Shape{3, 64, 8, 8}, Shape{64, 64, 3, 3}, true, true, true, 31);
    const Model m1 = test::conv_block_model(Shape{1, 64, 8, 8}, Shape{64, 64, 3, 3}, true, true, true, 31);
    const auto in3 = inputs_of(m3, 9);
    std::vector<Tensor> in1;
    for (const Tensor& t : in3) {
        Shape s = t.shape();
        s[0] = 1;
        in1.push_back(Tensor(s, std::vector<float>(t.data(), t.data() + s.numel())));
    }
    for (int threads : {1, 2}) {
        CAPTURE(threads);
        NativeBackend native(threads);
        const Tensor batch = test::run_inference(m3, native, in3), alone = test::run_inference(m1, native, in1);
        CHECK(std::equal(alone.data(), alone.data() + alone.numel(), batch.data()));
    }
}

TEST_CASE("every candidate kernel gives a sample the same result, to the bit, alone and in a batch") {
    // Stride 1 and 2, planes whose pixels do not fill the last vector, a batch with fewer samples
    // than threads (channel blocks shared out) and one with more (samples shared out).
    const std::vector<Case> shapes = {{Shape{3, 32, 16, 16}, Shape{64, 32, 3, 3}, 2, true},
                                      {Shape{3, 13, 15, 9}, Shape{21, 13, 3, 3}, 2, true},
                                      {Shape{3, 16, 32, 32}, Shape{16, 16, 3, 3}, 1, true},
                                      {Shape{3, 5, 7, 11}, Shape{9, 5, 3, 3}, 1, false}};
    for (const Case& c : shapes) {
        const Model m3 = test::conv_block_model(c.x, c.w, true, c.residual_relu, c.residual_relu, 41, 1, c.stride);
        Shape x1 = c.x;
        x1[0] = 1;
        const Model m1 = test::conv_block_model(x1, c.w, true, c.residual_relu, c.residual_relu, 41, 1, c.stride);
        const auto in3 = inputs_of(m3, 12);
        std::vector<Tensor> in1;
        for (const Tensor& t : in3) {  // the batch's last sample
            Shape s = t.shape();
            s[0] = 1;
            const size_t size = size_t(s.numel());
            in1.push_back(Tensor(s, std::vector<float>(t.data() + 2 * size, t.data() + 3 * size)));
        }
        const Shape y{c.x[0], c.w[0], (c.x[2] - 1) / c.stride + 1, (c.x[3] - 1) / c.stride + 1};
        const Attrs a = test::conv_attrs(3, c.stride, 1);
        for (Isa isa : isas())
            for (ConvKernel k : native::conv_kernel_candidates(a, c.x, c.w, y, isa))
                for (int threads : {1, 2}) {
                    CAPTURE(c.x.str());
                    CAPTURE(native::conv_kernel_name(k));
                    CAPTURE(threads);
                    NativeBackend native(threads, {KernelMode::fixed, isa});
                    native.force_conv_kernel(k);
                    const Tensor batch = test::run_inference(m3, native, in3);
                    const Tensor alone = test::run_inference(m1, native, in1);
                    REQUIRE(native.last_conv_kernel() == k);
                    CHECK(std::equal(alone.data(), alone.data() + alone.numel(), batch.data() + 2 * alone.numel()));
                }
    }
}

TEST_CASE("the packed GEMM gives each element the fused multiply-adds over each depth block in order, to the bit") {
    // Both micro-kernels (AVX2 6x16, and AVX-512 6x32 or 12x16 where the CPU has it) run, per
    // element, one fused multiply-add per step of a 256-deep block from zero, then add the block's
    // sum to C. The loop below does exactly that, so C must agree bit for bit, whichever kernel ran.
    // 13 rows: two full 6-row panels and an edge. 80 columns, depth 300: two pairs of 16-column
    // panels and one single, two depth blocks. 16 columns with rows 16 floats apart, 32-byte but not
    // 64-byte aligned: B is read in place as one packed panel. The packed product also as a
    // convolution stores it: over a bias (or zeros) with ReLU, whatever C held.
    struct Case {
        int64_t M, N, K, b_offset;
    };
    for (const Case& t : {Case{13, 80, 300, 0}, Case{13, 16, 40, 8}}) {
        const int64_t M = t.M, N = t.N, K = t.K, kBlock = 256;
        CAPTURE(N);
        std::vector<float> a(M * K), c0(M * N);
        AlignedVector<float> b_store(K * N + t.b_offset);  // starts on a 64-byte line
        float* b = b_store.data() + t.b_offset;
        uint32_t state = 12345;
        auto next = [&] {
            state = state * 1664525u + 1013904223u;
            return float(int32_t(state >> 8) % 2001 - 1000) / 997.0f;
        };
        for (float& e : a) e = next();
        for (int64_t e = 0; e < K * N; ++e) b[e] = next();
        for (float& e : c0) e = next();
        // want = c0 + A B in the kernels' order; A is [M, K] and B [K, N], row-major.
        std::vector<float> want = c0;
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
                for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
                    float acc = 0.0f;
                    for (int64_t k = k0; k < std::min(K, k0 + kBlock); ++k)
                        acc = std::fma(a[i * K + k], b[k * N + j], acc);
                    want[i * N + j] += acc;
                }
        std::vector<float> at(K * M), bt(N * K);  // A^T [K, M] and B^T [N, K]
        for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < K; ++k) at[k * M + i] = a[i * K + k];
        for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < N; ++j) bt[j * K + k] = b[k * N + j];
        std::vector<float> packed(native::packed_a_floats(M, K));
        native::pack_a_whole(M, K, a.data(), K, packed.data());
        // The convolution's store: C filled with a per-row bias (or zeros), += A B, then ReLU.
        std::vector<float> bias(M), want_set(M * N), want_set_nobias(M * N);
        for (float& e : bias) e = next();
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                float with = bias[i], without = 0.0f;
                for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
                    float acc = 0.0f;
                    for (int64_t k = k0; k < std::min(K, k0 + kBlock); ++k)
                        acc = std::fma(a[i * K + k], b[k * N + j], acc);
                    with += acc;
                    without += acc;
                }
                want_set[i * N + j] = with > 0.0f ? with : 0.0f;
                want_set_nobias[i * N + j] = without;
            }
        for (const char* variant : {"nn", "nt", "tn", "packed", "packed_set", "packed_set_nobias"}) {
            CAPTURE(variant);
            std::vector<float> c = c0;
            const std::string v = variant;
            if (v == "nn") native::gemm_nn(M, N, K, a.data(), K, b, N, c.data(), N);
            if (v == "nt") native::gemm_nt(M, N, K, a.data(), K, bt.data(), K, c.data(), N);
            if (v == "tn") native::gemm_tn(M, N, K, at.data(), M, b, N, c.data(), N);
            if (v == "packed") native::gemm_packed_nn(M, N, K, packed.data(), b, N, c.data(), N);
            if (v == "packed_set")
                native::gemm_packed_nn(M, N, K, packed.data(), b, N, c.data(), N, 0, -1, {true, bias.data(), true});
            if (v == "packed_set_nobias")
                native::gemm_packed_nn(M, N, K, packed.data(), b, N, c.data(), N, 0, -1, {true, nullptr, false});
            const std::vector<float>& expected = v == "packed_set"          ? want_set
                                                 : v == "packed_set_nobias" ? want_set_nobias
                                                                            : want;
            int64_t differ = 0;
            for (int64_t e = 0; e < M * N; ++e) differ += c[e] != expected[e];
            CHECK(differ == 0);
        }
    }
}

TEST_CASE("the narrow packed GEMM gives each element the fused multiply-adds over all its depth in order, to the bit") {
    // 1 to 4 columns (planes of 1-4 pixels); 100 rows: two full 48-row panels and a 4-row edge. The
    // AVX-512 kernel takes a panel in three zmm, the AVX2 one each half in three ymm; per element
    // both run one fused multiply-add per step of depth from zero, then add the sum to C.
    const int64_t M = 100, K = 300;
    uint32_t state = 777;
    auto next = [&] {
        state = state * 1664525u + 1013904223u;
        return float(int32_t(state >> 8) % 2001 - 1000) / 997.0f;
    };
    std::vector<float> a(M * K);
    for (float& e : a) e = next();
    std::vector<float> packed(native::packed_a_rows_floats(M, K));
    native::pack_a_rows(M, K, a.data(), K, packed.data());
    for (int64_t N = 1; N <= native::kNarrowColumns; ++N) {
        CAPTURE(N);
        std::vector<float> b(K * N), c(M * N);
        for (float& e : b) e = next();
        for (float& e : c) e = next();
        std::vector<float> want = c;
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                float acc = 0.0f;
                for (int64_t k = 0; k < K; ++k) acc = std::fma(a[i * K + k], b[k * N + j], acc);
                want[i * N + j] += acc;
            }
        native::gemm_packed_narrow(M, N, K, packed.data(), b.data(), N, c.data(), N, 0, native::narrow_panels(M));
        int64_t differ = 0;
        for (int64_t e = 0; e < M * N; ++e) differ += c[e] != want[e];
        CHECK(differ == 0);
    }
}

namespace {

// linear_dot's order in scalar code: four accumulators of 8 lanes over blocks of 32, blocks of 8 into
// the first, lanes added ((0 + 1) + (2 + 3)), then horizontally (l + l + 4, then lanes 0 + 2 and 1 + 3,
// then those two), then a fused multiply-add per remaining element.
float dot_in_order(const float* a, const float* b, int64_t K) {
    float acc[4][8] = {};
    int64_t k = 0;
    for (; k + 32 <= K; k += 32)
        for (int r = 0; r < 4; ++r)
            for (int l = 0; l < 8; ++l) acc[r][l] = std::fma(a[k + 8 * r + l], b[k + 8 * r + l], acc[r][l]);
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; ++l) acc[0][l] = std::fma(a[k + l], b[k + l], acc[0][l]);
    float t[8], h[4];
    for (int l = 0; l < 8; ++l) t[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    for (int l = 0; l < 4; ++l) h[l] = t[l] + t[l + 4];
    float s = (h[0] + h[2]) + (h[1] + h[3]);
    for (; k < K; ++k) s = std::fma(a[k], b[k], s);
    return s;
}

}  // namespace

TEST_CASE("the classifier heads' dot products keep one order on AVX2 and AVX-512, any batch and thread count") {
    // Depths with every step of the order (blocks of 32, of 8, a scalar tail); class counts around
    // the AVX-512 kernel's block of 12; one sample and several; with and without a bias.
    std::vector<Isa> isas{Isa::avx2};
    if (native::cpu_has_avx512()) isas.push_back(Isa::avx512);
    uint32_t state = 99;
    auto next = [&] {
        state = state * 1664525u + 1013904223u;
        return float(int32_t(state >> 8) % 2001 - 1000) / 997.0f;
    };
    int runs = 0;
    for (int64_t K : {1, 7, 8, 31, 32, 45, 1003, 8192})
        for (int64_t N : {1, 10, 12, 13, 25})
            for (int64_t M : {1, 6}) {
                std::vector<float> a(M * K), b(N * K), c(N);
                for (float& e : a) e = next();
                for (float& e : b) e = next();
                for (float& e : c) e = next();
                for (bool bias : {false, true}) {
                    std::vector<float> want(M * N);
                    double worst = 0;
                    for (int64_t i = 0; i < M; ++i)
                        for (int64_t j = 0; j < N; ++j) {
                            want[i * N + j] = (bias ? c[j] : 0.0f) + dot_in_order(&a[i * K], &b[j * K], K);
                            CHECK(native::linear_dot(&a[i * K], &b[j * K], K) == dot_in_order(&a[i * K], &b[j * K], K));
                            double exact = bias ? c[j] : 0.0;
                            for (int64_t k = 0; k < K; ++k) exact += double(a[i * K + k]) * b[j * K + k];
                            worst = std::max(worst, std::fabs(exact - want[i * N + j]) / std::sqrt(double(K)));
                        }
                    CHECK(worst < 1e-5);
                    for (Isa isa : isas)
                        for (int threads : {1, 2}) {
                            CAPTURE(K);
                            CAPTURE(N);
                            CAPTURE(M);
                            CAPTURE(isa_name(isa));
                            CAPTURE(threads);
                            std::vector<float> y(M * N, -1.0f);
                            native::linear_rows(a.data(), b.data(), bias ? c.data() : nullptr, y.data(), M, N, K, isa,
                                                threads);
                            CHECK(y == want);
                            ++runs;
                        }
                }
            }
    CHECK(runs == 8 * 5 * 2 * 2 * 2 * int(isas.size()));
}
