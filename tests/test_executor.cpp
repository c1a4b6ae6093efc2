// The executor: early exit must equal the all-exits pass plus the policy, batch compaction must
// equal batch-1 execution, and neither buffer reuse nor running a batch in chunks may change any result.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/exit_calibration.h"
#include "engine/plan.h"
#include "engine/model_zoo.h"
#include "native/native_backend.h"
#include "test_util.h"
#include "unfused_native.h"

using namespace engine;

namespace {

struct Reference {
    std::vector<int> cls, exit;
    std::vector<float> prob;
};

// The policy applied by hand to every exit's logits.
Reference policy_on_all_exits(Plan& plan, const Tensor& x, int n, const std::vector<float>& q) {
    plan.run_all(x.data(), n);
    const int K = plan.model().num_exits();
    Reference r;
    for (int i = 0; i < n; ++i) {
        for (int k = 0; k < K; ++k) {
            TensorView z = plan.exit_logits(k);
            const int64_t classes = z.numel() / n;
            const float* row = z.data + i * classes;
            int best = int(std::max_element(row, row + classes) - row);
            double sum = 0;
            for (int c = 0; c < classes; ++c) sum += std::exp(double(row[c]) - row[best]);
            if (k == K - 1 || float(1.0 / sum) >= q[k]) {  // the engine compares float probabilities
                r.cls.push_back(best);
                r.exit.push_back(k);
                r.prob.push_back(float(1.0 / sum));
                break;
            }
        }
    }
    return r;
}

// Thresholds at which a spread of samples leaves at every exit of this (untrained) model.
std::vector<float> spread_thresholds(Plan& plan, const Tensor& x, int n) {
    plan.run_all(x.data(), n);
    const int K = plan.model().num_exits();
    std::vector<float> q(K, 1.0f);
    for (int k = 0; k + 1 < K; ++k) {
        TensorView z = plan.exit_logits(k);
        const int64_t classes = z.numel() / n;
        std::vector<float> top;
        for (int i = 0; i < n; ++i) {
            const float* row = z.data + i * classes;
            float mx = *std::max_element(row, row + classes);
            double sum = 0;
            for (int c = 0; c < classes; ++c) sum += std::exp(double(row[c]) - mx);
            top.push_back(float(1.0 / sum));
        }
        std::sort(top.begin(), top.end());
        q[k] = top[size_t(n * (K - 1 - k) / K)];  // roughly 1/K of those left leave here
    }
    return q;
}

}  // namespace

TEST_CASE("early exit equals the all-exits pass plus the policy, at batch N and batch 1") {
    Model model = build_model("small", 10, 32, 3);
    const int n = 48;
    Tensor x = test::random_tensor(Shape{n, 3, 32, 32}, 5, 0, 1);
    for (const char* name : {"ref", "native"}) {
        CAPTURE(name);
        auto backend = make_backend(name);
        Plan all(model, *backend, n);
        auto q = spread_thresholds(all, x, n);
        Reference ref = policy_on_all_exits(all, x, n, q);
        std::vector<int> histogram(model.num_exits(), 0);
        for (int e : ref.exit) histogram[e]++;
        for (int count : histogram) CHECK(count > 0);  // the test exercises every exit

        Plan early(model, *backend, n);
        std::vector<SampleResult> batch(n);
        early.run_early(x.data(), n, q.data(), batch.data());
        Plan single(model, *backend, 1);
        for (int i = 0; i < n; ++i) {
            CAPTURE(i);
            CHECK(batch[i].exit == ref.exit[i]);
            CHECK(batch[i].cls == ref.cls[i]);
            CHECK(batch[i].prob == doctest::Approx(ref.prob[i]).epsilon(1e-5));
            SampleResult one;
            single.run_early(x.data() + int64_t(i) * 3 * 32 * 32, 1, q.data(), &one);
            CHECK(one.exit == ref.exit[i]);
            CHECK(one.cls == ref.cls[i]);
        }
        // Samples that leave later took longer to decide.
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j)
                if (batch[i].exit < batch[j].exit) CHECK(batch[i].ns <= batch[j].ns);
    }
}

TEST_CASE("buffer reuse changes no result: a plan that keeps every value agrees") {
    Model model = build_model("small", 10, 32, 4);
    const int n = 8;
    Tensor x = test::random_tensor(Shape{n, 3, 32, 32}, 9, 0, 1);
    test::UnfusedNative backend;  // folding BatchNorm would change the rounding (tests/test_conv_fusion.cpp)
    Plan reuse(model, backend, n), keep(model, backend, n, /*keep_all=*/true);
    reuse.run_all(x.data(), n);
    keep.run_all(x.data(), n);
    for (int k = 0; k < model.num_exits(); ++k) {
        TensorView a = reuse.exit_logits(k), b = keep.exit_logits(k);
        REQUIRE(a.numel() == b.numel());
        CHECK(relative_error(a.data, b.data, a.numel()) == 0.0);
    }
}

namespace {

// The native kernels with the plan's chunk size set (0: the whole batch at once).
class ChunkingNative : public native::NativeBackend {
public:
    ChunkingNative(int threads, int chunk) : NativeBackend(threads), chunk_(chunk) {}
    int inference_chunk() const override { return chunk_; }

private:
    int chunk_;
};

}  // namespace

TEST_CASE("an inference plan that runs a batch in chunks gives every exit's logits of the whole batch at once") {
    // Chunks of 3 over 10 samples: a last, short chunk, and every exit's values kept while later
    // chunks run the nodes whose space they would otherwise share.
    const int n = 10;
    for (const char* arch : {"small", "mobilenet"}) {
        CAPTURE(arch);
        Model model = build_model(arch, 10, 32, 4);
        Tensor x = test::random_tensor(Shape{n, 3, 32, 32}, 5, 0, 1);
        for (int threads : {1, 2}) {
            CAPTURE(threads);
            ChunkingNative whole(threads, 0), chunked(threads, 3);
            Plan a(model, whole, n), b(model, chunked, n);
            a.run_all(x.data(), n);
            b.run_all(x.data(), n);
            for (int k = 0; k < model.num_exits(); ++k) {
                TensorView want = a.exit_logits(k), got = b.exit_logits(k);
                REQUIRE(got.numel() == want.numel());
                CHECK(std::equal(got.data, got.data + got.numel(), want.data));
            }
        }
    }
}

TEST_CASE("every value and gradient a plan keeps starts on a 64-byte line") {
    // The kernels' zmm loads and stores split across two lines otherwise (engine/aligned_vector.h).
    // malloc starts large blocks 16 bytes into a line or on one, as it happens: several plans.
    auto on_line = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; };
    for (size_t n : {1, 3, 100, 1000, 100000}) CHECK(on_line(AlignedVector<float>(n).data()));
    Model model = build_model("small", 10, 32, 1);
    auto backend = make_backend("native", 1);
    for (int batch = 1; batch <= 4; ++batch) {
        CAPTURE(batch);
        Plan plan(model, *backend, batch, /*keep_all=*/true);
        Tensor x = test::random_tensor(Shape{batch, 3, 32, 32}, 3, 0, 1);
        plan.run_all(x.data(), batch, /*training=*/true);
        std::vector<std::vector<float>> seeds;
        std::vector<const float*> seed_ptrs;
        for (int k = 0; k < model.num_exits(); ++k) {
            seeds.emplace_back(plan.exit_logits(k).numel(), 1.0f);
            seed_ptrs.push_back(seeds.back().data());
        }
        plan.backward(seed_ptrs.data(), /*need_input_grad=*/true, /*training=*/true);
        int values = 0, grads = 0;
        for (int i = 0; i < int(model.graph.nodes.size()); ++i) {
            const Node& node = model.graph.nodes[i];
            if (node.op == Op::Constant) {
                if (!node.trainable) continue;
                CHECK(on_line(plan.param_grad(i).data));
                ++grads;
                continue;
            }
            const float* value = nullptr;
            try {
                value = plan.value(i).data;
            } catch (const Error&) {  // fused into the node after it: no value of its own
                continue;
            }
            CHECK(on_line(value));
            ++values;
        }
        CHECK(on_line(plan.input_grad().data));
        CHECK(values > 10);
        CHECK(grads > 10);
    }
}

TEST_CASE("a plan refuses batches above its maximum") {
    Model model = build_model("tiny", 10, 8, 1);
    auto backend = make_backend("ref");
    Plan plan(model, *backend, 2);
    Tensor x(Shape{3, 3, 8, 8});
    CHECK_THROWS_AS(plan.run_all(x.data(), 3), Error);
}

// Thresholds for a chosen exit histogram (the owner's speed target, or a pirate winning back the
// victim's): evaluating under them gives the asked counts; an exit given no share never fires.
TEST_CASE("thresholds for exit shares give those shares back") {
    Model model = build_model("small", 10, 32, 4);
    const int n = 120, K = model.num_exits();
    REQUIRE(K == 4);
    Dataset data;
    data.images = test::random_tensor(Shape{n, 3, 32, 32}, 6, 0, 1);
    data.labels.assign(n, 0);
    data.num_classes = 10;
    auto backend = make_backend("native", 1);
    for (const std::vector<double>& shares :
         {std::vector<double>{0.25, 0.25, 0.25, 0.25}, std::vector<double>{0.1, 0.0, 0.6, 0.3},
          std::vector<double>{0.0, 0.0, 0.0, 1.0}}) {
        const auto q = thresholds_for_exit_shares(model, *backend, data, shares, 32);
        const EvalResult r = evaluate(model, *backend, data, q, 32);
        for (int k = 0; k < K; ++k) {
            CAPTURE(k);
            CHECK(r.exit_histogram[k] == std::llround(shares[k] * n));
            if (k + 1 < K && shares[k] == 0) CHECK(q[k] > 1.0f);
        }
    }
    CHECK_THROWS_WITH_AS(thresholds_for_exit_shares(model, *backend, data, {0.5, 0.5}), doctest::Contains("2 given"),
                         Error);
    CHECK_THROWS_WITH_AS(thresholds_for_exit_shares(model, *backend, data, {0.5, 0.5, 0.5, 0.0}),
                         doctest::Contains("sum to"), Error);
}
