// The cuda backend's host side, on any machine (no GPU, no CUDA needed): cuDNN parameter derivation,
// the algorithm policy, broadcast strides, launch sizes, batch buckets, the wiring of the early-exit
// CUDA graph, and the Plan's device-memory path driven by a fake device backend (the reference loops
// over memory the Plan must reach only through the Backend memory hooks).
#include "engine/config.h"
#include <doctest/doctest.h>

#include <cstring>
#include <map>

#include "cuda/cuda_exit_wiring.h"
#include "cuda/cuda_host_plan.h"
#include "engine/error.h"
#include "op_cases.h"
#include "ref/ref_kernels.h"
#include "tiny_model.h"

using namespace engine;
using namespace engine::cuda;

namespace {

Node conv_node(const char* name, int k, int stride, int64_t pt, int64_t pl, int64_t pb, int64_t pr, int groups = 1,
               int dil = 1) {
    Node n;
    n.op = Op::Conv;
    n.name = name;
    n.attrs = test::conv_attrs(k, stride, 0, groups, dil);
    n.attrs.pad[0] = pt, n.attrs.pad[1] = pl, n.attrs.pad[2] = pb, n.attrs.pad[3] = pr;
    return n;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// "Device" memory is a set of heap blocks the Plan may reach only through the hooks; every pointer
// the Plan hands to forward/backward must lie in one of them, every host pointer outside.
class FakeDevice : public ref::RefBackend {
public:
    ~FakeDevice() override {
        for (auto& [p, n] : blocks_) delete[] p;
    }
    std::string name() const override { return "fake-device"; }
    bool device_memory() const override { return true; }
    float* device_alloc(size_t floats) override {
        float* p = new float[floats]();
        blocks_[p] = floats;
        return p;
    }
    void device_free(float* p) override {
        if (!p) return;
        auto it = blocks_.find(p);
        if (it == blocks_.end())
            ++bad;
        else
            blocks_.erase(it), delete[] p;
    }
    void upload(float* dst, const float* src, size_t n) override {
        bad += !inside(dst, n) + on_device(src);
        ++uploads;
        std::memcpy(dst, src, sizeof(float) * n);
    }
    void download(float* dst, const float* src, size_t n) override {
        bad += !inside(src, n) + on_device(dst);
        std::memcpy(dst, src, sizeof(float) * n);
    }
    void device_copy(float* dst, const float* src, size_t n) override {
        bad += !inside(dst, n) + !inside(src, n);
        ++copies;
        std::memmove(dst, src, sizeof(float) * n);
    }
    void device_zero(float* dst, size_t n) override {
        bad += !inside(dst, n);
        std::memset(dst, 0, sizeof(float) * n);
    }
    void forward(const OpArgs& a) override {
        for (int i = 0; i < a.n_in; ++i) bad += !inside(a.in[i].data, a.in[i].numel());
        bad += !inside(a.out.data, a.out.numel());
        RefBackend::forward(a);
    }
    void backward(const GradArgs& g) override {
        bad += !inside(g.grad_out.data, g.grad_out.numel());
        for (int i = 0; i < g.fwd.n_in; ++i)
            if (g.grad_in[i].data) bad += !inside(g.grad_in[i].data, g.grad_in[i].numel());
        RefBackend::backward(g);
    }
    bool on_device(const float* p) const {
        auto it = blocks_.upper_bound(p);
        if (it == blocks_.begin()) return false;
        --it;
        return p >= it->first && p < it->first + it->second;
    }
    bool inside(const float* p, size_t n) const {
        if (n == 0) return true;
        auto it = blocks_.upper_bound(p);
        if (it == blocks_.begin()) return false;
        --it;
        return p >= it->first && p + n <= it->first + it->second;
    }
    size_t live_blocks() const { return blocks_.size(); }
    int bad = 0, uploads = 0, copies = 0;

private:
    std::map<const float*, size_t> blocks_;
};

}  // namespace

TEST_CASE("conv_params: cuDNN's parameters from a node, explicit padding for asymmetric pads") {
    const Node sym = conv_node("c", 3, 2, 1, 1, 1, 1, 1, 1);
    ConvParams p = conv_params(sym, Shape{2, 4, 7, 7}, Shape{5, 4, 3, 3}, Shape{2, 5, 4, 4});
    CHECK(p.pad_h == 1);
    CHECK(p.pad_w == 1);
    CHECK(p.stride_h == 2);
    CHECK_FALSE(p.explicit_pad);
    CHECK(p.oh == 4);
    CHECK(p.padded_input_floats() == 0);

    CHECK(same_conv(p, p));
    const Node stride1 = conv_node("c", 3, 1, 1, 1, 1, 1, 1, 1);
    CHECK_FALSE(same_conv(p, conv_params(stride1, Shape{2, 4, 4, 4}, Shape{5, 4, 3, 3}, Shape{2, 5, 4, 4})));

    const Node grouped = conv_node("g", 3, 1, 2, 2, 2, 2, 2, 2);
    p = conv_params(grouped, Shape{2, 4, 6, 6}, Shape{6, 2, 3, 3}, Shape{2, 6, 6, 6});
    CHECK(p.groups == 2);
    CHECK(p.dil_h == 2);
    CHECK(p.pad_h == 2);

    // ONNX "SAME_UPPER"-style padding: one more at the bottom and right.
    const Node asym = conv_node("a", 3, 2, 0, 0, 1, 1);
    p = conv_params(asym, Shape{1, 3, 8, 8}, Shape{4, 3, 3, 3}, Shape{1, 4, 4, 4});
    CHECK(p.explicit_pad);
    CHECK(p.pad_h == 0);
    CHECK(p.pad_w == 0);
    CHECK(p.padded_input_floats() == 1 * 3 * 9 * 9);

    CHECK(error_of([&] {
              conv_params(sym, Shape{2, 4, 7, 7}, Shape{5, 4, 3, 3}, Shape{2, 5, 5, 5});
          }).find("cuda conv 'c'") != std::string::npos);
    CHECK(error_of([&] {
              conv_params(grouped, Shape{2, 5, 6, 6}, Shape{6, 2, 3, 3}, Shape{2, 6, 6, 6});
          }).find("groups") != std::string::npos);
    CHECK(error_of([&] {
              conv_params(sym, Shape{2, 4, 7}, Shape{5, 4, 3}, Shape{2, 5, 4});
          }).find("2-D") != std::string::npos);
}

TEST_CASE("choose_algo: cuDNN's order, deterministic only, within the workspace") {
    std::vector<AlgoCandidate> c = {
        {6, true, false, 0, -1},       // fastest by heuristics, but nondeterministic
        {7, true, true, 1 << 30, -1},  // too much workspace
        {1, false, true, 0, -1},       // failed
        {2, true, true, 1 << 20, -1},  // the pick
        {0, true, true, 0, -1},
    };
    CHECK(choose_algo(c, size_t(256) << 20) == 3);
    CHECK(choose_algo(c, size_t(2) << 30) == 1);
    CHECK(choose_algo(c, 0) == 4);
    CHECK(choose_algo({{6, true, false, 0, -1}}, 1 << 30) == -1);
    CHECK(describe_candidates(c).find("algo 6 nondeterministic") != std::string::npos);
}

TEST_CASE("broadcast_dims: strides per output dimension, zero where an operand broadcasts") {
    BroadcastDims d = broadcast_dims(Shape{2, 3, 4}, Shape{3, 1}, Shape{2, 3, 4});
    CHECK(d.rank == 3);
    CHECK(d.a_same);
    CHECK_FALSE(d.b_same);
    CHECK(d.a_stride[0] == 12);
    CHECK(d.a_stride[2] == 1);
    CHECK(d.b_stride[0] == 0);
    CHECK(d.b_stride[1] == 1);
    CHECK(d.b_stride[2] == 0);
    d = broadcast_dims(Shape{2, 5}, Shape{1}, Shape{2, 5});
    CHECK(d.b_stride[0] == 0);
    CHECK(d.b_stride[1] == 0);
    CHECK(error_of([] {
              broadcast_dims(Shape{2, 3}, Shape{4}, Shape{2, 3});
          }).find("does not broadcast") != std::string::npos);
}

TEST_CASE("launch_1d and batch buckets") {
    CHECK(launch_1d(0).blocks == 1);
    CHECK(launch_1d(1000).blocks == 4);
    CHECK(launch_1d(int64_t(1) << 40).blocks == 4096);
    CHECK(batch_buckets(1) == std::vector<int>{1});
    CHECK(batch_buckets(256) == std::vector<int>{256, 128, 64, 32, 16, 8, 4, 2, 1});
    CHECK(batch_buckets(100) == std::vector<int>{100, 64, 32, 16, 8, 4, 2, 1});
    const auto b = batch_buckets(100);
    const int count = static_cast<int>(b.size());
    CHECK(b[bucket_index(100, b.data(), count)] == 100);
    CHECK(b[bucket_index(65, b.data(), count)] == 100);
    CHECK(b[bucket_index(64, b.data(), count)] == 64);
    CHECK(b[bucket_index(33, b.data(), count)] == 64);
    CHECK(b[bucket_index(3, b.data(), count)] == 4);
    CHECK(b[bucket_index(1, b.data(), count)] == 1);
    for (int n = 1; n <= 100; ++n) {  // the smallest bucket that holds n
        const int i = bucket_index(n, b.data(), count);
        CHECK(b[i] >= n);
        CHECK((i + 1 == count || b[i + 1] < n));
    }
}

TEST_CASE("early-exit graph wiring: each segment after the first behind the IF its exit's decision sets") {
    for (int batch : {1, 256}) {
        CAPTURE(batch);
        const ExitGraphWiring w = plan_exit_graph(7, batch);
        INFO(describe(w));
        REQUIRE(w.levels.size() == 7);
        const bool bucketed = batch > 1;
        int ifs = 0, switches = 0;
        for (const auto& h : w.handles) (h.kind == ExitGraphWiring::HandleKind::If ? ifs : switches)++;
        CHECK(ifs == 6);
        CHECK(switches == (bucketed ? 7 : 0));
        for (int k = 0; k < 7; ++k) {
            const auto& L = w.levels[k];
            CHECK(L.segment == k);
            // Level k lives in the body of level k-1's IF; the root holds level 0 alone.
            CHECK(L.parent_if == (k == 0 ? -1 : w.levels[k - 1].if_handle));
            CHECK((L.steps.front() == ExitStep::Start) == (k == 0));
            // The handles a level uses belong to it, and are set upstream of the node that reads them.
            auto at = [&](ExitStep s) {
                for (size_t i = 0; i < L.steps.size(); ++i)
                    if (L.steps[i] == s) return static_cast<int>(i);
                return -1;
            };
            if (bucketed) {
                REQUIRE(L.switch_handle >= 0);
                CHECK(w.handles[L.switch_handle].level == k);
                CHECK(w.handles[L.switch_handle].bodies == static_cast<int>(w.buckets.size()));
                CHECK(at(ExitStep::SelectBucket) >= 0);
                CHECK(at(ExitStep::SelectBucket) + 1 == at(ExitStep::SegmentSwitch));
                CHECK(at(ExitStep::Segment) == -1);
            } else {
                CHECK(L.switch_handle == -1);
                CHECK(at(ExitStep::Segment) >= 0);
            }
            const int seg = bucketed ? at(ExitStep::SegmentSwitch) : at(ExitStep::Segment);
            CHECK(at(ExitStep::Decide) > seg);
            if (k < 6) {
                REQUIRE(L.if_handle >= 0);
                CHECK(w.handles[L.if_handle].kind == ExitGraphWiring::HandleKind::If);
                CHECK(w.handles[L.if_handle].level == k);
                CHECK(L.steps.back() == ExitStep::NextIf);
                CHECK(at(ExitStep::Decide) < at(ExitStep::NextIf));
                // Compaction only at batch N, between the decision and the next segment.
                CHECK((at(ExitStep::Compact) >= 0) == bucketed);
                if (bucketed) CHECK(at(ExitStep::Compact) == at(ExitStep::Decide) + 1);
            } else {
                CHECK(L.if_handle == -1);
                CHECK(L.steps.back() == ExitStep::Decide);
            }
        }
    }
    CHECK(plan_exit_graph(1, 1).levels[0].steps ==
          std::vector<ExitStep>{ExitStep::Start, ExitStep::Segment, ExitStep::Decide});
    CHECK_THROWS_AS(plan_exit_graph(0, 1), Error);
}

TEST_CASE("the Plan reaches device memory only through the Backend hooks, and gives the same results") {
    auto ref = make_backend("ref");
    SUBCASE("every op, forward and backward, in a keep_all plan") {
        FakeDevice dev;
        for (const auto& c : test::all_op_cases()) {
            CAPTURE(c.label);
            test::check_same_result(test::run_op_case(c, *ref, 11), test::run_op_case(c, dev, 11), 0.0);
        }
        CHECK(dev.bad == 0);
        CHECK(dev.live_blocks() == 0);  // the plans gave back everything
    }
    SUBCASE("inference with fused epilogues, early exit with compaction") {
        const Model m = test::tiny_model(3, 8, 10);
        const int n = 16;
        const Tensor x = test::random_tensor(Shape{n, 3, 8, 8}, 5, 0, 1);
        Plan want(m, *ref, n);
        want.run_all(x.data(), n);
        // A threshold at the median exit-0 probability: about half the samples leave at exit 0.
        std::vector<float> probs;
        for (int r = 0; r < n; ++r) probs.push_back(top_class(want.exit_logits(0).data + r * 10, 10).prob);
        std::nth_element(probs.begin(), probs.begin() + n / 2, probs.end());
        const float q[2] = {probs[n / 2], 1.0f};
        FakeDevice dev;
        {
            Plan got(m, dev, n);
            got.run_all(x.data(), n);
            for (int k = 0; k < 2; ++k) {
                const TensorView a = want.exit_logits(k), b = got.exit_logits(k);
                REQUIRE(a.shape == b.shape);
                CHECK(std::memcmp(a.data, b.data, sizeof(float) * a.numel()) == 0);
            }
            std::vector<SampleResult> ra(n), rb(n);
            want.run_early(x.data(), n, q, ra.data());
            got.run_early(x.data(), n, q, rb.data());
            int early = 0;
            for (int r = 0; r < n; ++r) {
                CHECK(ra[r].exit == rb[r].exit);
                CHECK(ra[r].cls == rb[r].cls);
                CHECK(ra[r].prob == rb[r].prob);
                early += rb[r].exit == 0;
            }
            CHECK(early > 0);
            CHECK(early < n);
            CHECK(dev.copies > 0);  // compaction moved rows through device_copy
        }
        CHECK(dev.bad == 0);
        CHECK(dev.live_blocks() == 0);
    }
    SUBCASE("training: BatchNorm's running statistics come back to the model, new weights go up") {
        Model a = test::tiny_model(4, 8, 10), b = test::tiny_model(4, 8, 10);
        const Tensor x = test::random_tensor(Shape{4, 3, 8, 8}, 6, 0, 1);
        FakeDevice dev;
        Plan pa(a, *ref, 4, true), pb(b, dev, 4, true);
        for (int step = 0; step < 2; ++step) {
            pa.run_all(x.data(), 4, true, 1);
            pb.run_all(x.data(), 4, true, 1);
            for (size_t i = 0; i < a.graph.nodes.size(); ++i)
                if (a.graph.nodes[i].op == Op::Constant)
                    CHECK(a.graph.nodes[i].value.values() == b.graph.nodes[i].value.values());
            // An optimiser step on the host: the next run must see it.
            for (size_t i = 0; i < a.graph.nodes.size(); ++i)
                if (a.graph.nodes[i].trainable)
                    for (size_t e = 0; e < a.graph.nodes[i].value.values().size(); ++e) {
                        a.graph.nodes[i].value.values()[e] *= 0.9f;
                        b.graph.nodes[i].value.values()[e] *= 0.9f;
                    }
        }
        const TensorView za = pa.exit_logits(1), zb = pb.exit_logits(1);
        CHECK(std::memcmp(za.data, zb.data, sizeof(float) * za.numel()) == 0);
        CHECK(dev.bad == 0);
    }
}

namespace {

// A device backend with its own early-exit runner, as the cuda backend's CUDA graph is.
struct RunnerDevice : FakeDevice {
    struct Runner : EarlyExitRunner {
        RunnerDevice& dev;
        explicit Runner(RunnerDevice& d) : dev(d) {}
        void run(const float*, int n, SampleResult* results) override {
            ++dev.runs;
            for (int i = 0; i < n; ++i) results[i] = {1, 0.5f, 0, 7};
        }
    };
    std::unique_ptr<EarlyExitRunner> make_early_exit(Plan&, const float* thresholds) override {
        made_for.push_back(thresholds[0]);
        return std::make_unique<Runner>(*this);
    }
    std::vector<float> made_for;
    int runs = 0;
};

struct HostWithRunner : ref::RefBackend {  // a host backend is never asked
    std::unique_ptr<EarlyExitRunner> make_early_exit(Plan&, const float*) override {
        ++asked;
        return nullptr;
    }
    int asked = 0;
};

}  // namespace

TEST_CASE("Plan::run_early goes through a device backend's runner, made with the plan and for new thresholds") {
    Model m = test::tiny_model(3, 8, 10);
    m.set_threshold(0.6f);
    const Tensor x = test::random_tensor(Shape{4, 3, 8, 8}, 5, 0, 1);
    std::vector<SampleResult> r(4);
    RunnerDevice dev;
    {
        Plan plan(m, dev, 4);
        REQUIRE(dev.made_for.size() == 1);  // at construction, for the model's thresholds
        CHECK(dev.made_for[0] == 0.6f);
        plan.run_early(x.data(), 4, m.thresholds.data(), r.data());
        CHECK(dev.runs == 1);
        CHECK(r[3].ns == 7);
        CHECK(dev.made_for.size() == 1);
        const std::vector<float> q = {0.3f, 1.0f};
        plan.run_early(x.data(), 4, q.data(), r.data());
        CHECK(dev.made_for.size() == 2);
        CHECK(dev.made_for[1] == 0.3f);
        CHECK(dev.runs == 2);
        CHECK_THROWS_AS(plan.run_early(x.data(), 5, q.data(), r.data()), Error);
        Plan training(m, dev, 4, /*keep_all=*/true);
        CHECK(dev.made_for.size() == 2);  // gradient plans decide on the host
    }
    CHECK(dev.live_blocks() == 0);
    HostWithRunner host;
    Plan plan(m, host, 4);
    plan.run_early(x.data(), 4, m.thresholds.data(), r.data());
    CHECK(host.asked == 0);
}

TEST_CASE("make_backend(\"cuda\"): a device, a one-line error without one, or a clear unknown") {
    try {
        auto b = make_backend("cuda");
        CHECK(b->name() == "cuda");
        CHECK(b->device_memory());
    } catch (const Error& e) {
        const std::string msg = e.what();
        INFO(msg);
#ifdef ENGINE_WITH_CUDA
        CHECK(msg.rfind("backend 'cuda': no CUDA device (", 0) == 0);
        std::printf("SKIPPED: no CUDA device (%s)\n", msg.c_str());
#else
        CHECK(msg.find("unknown") != std::string::npos);
#endif
        CHECK(msg.find('\n') == std::string::npos);
    }
}
