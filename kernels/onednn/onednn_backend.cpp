#include "onednn_backend.h"

#include <omp.h>

#include <map>
#include <unordered_map>

#include "onednn_kernels.h"

namespace engine::onednn {

namespace {

// oneDNN (OpenMP build) sizes its parallel regions from the calling thread's OpenMP setting,
// both when it makes a primitive and when it runs one: set ours for the call, then restore.
class ThreadScope {
public:
    explicit ThreadScope(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
    ~ThreadScope() { omp_set_num_threads(saved_); }

private:
    int saved_;
};

enum Mode { kInference = 0, kTraining = 1, kBackward = 2 };

// Only BatchNorm computes differently in training; other ops share one kernel for both.
int mode_of(const Node& node, bool training, bool backward) {
    return (backward ? kBackward : 0) + (training && node.op == Op::BatchNorm ? kTraining : 0);
}

}  // namespace

struct State {
    struct NodeCache {
        NodeWeights weights;
        std::map<std::pair<int64_t, int>, std::unique_ptr<Kernel>> kernels;  // (batch, mode); null: reference code
    };
    Context ctx;
    std::unordered_map<const Node*, NodeCache> nodes;

    Kernel* make(NodeCache& nc, const std::pair<int64_t, int>& key, const Spec& s, bool backward) {
        std::unique_ptr<Kernel> k;
        try {
            k = backward ? make_backward(ctx, s) : make_forward(ctx, nc.weights, s);
        } catch (const dnnl::error&) {
            k = nullptr;  // a combination this oneDNN build does not implement: the reference code runs it
        }
        return (nc.kernels[key] = std::move(k)).get();
    }

    Kernel* find(const OpArgs& a, bool backward) {
        NodeCache& nc = nodes[&a.node];
        const std::pair<int64_t, int> key{a.out.shape[0], mode_of(a.node, a.training, backward)};
        auto it = nc.kernels.find(key);
        if (it != nc.kernels.end() && (!it->second || it->second->matches(a))) return it->second.get();
        std::vector<Shape> in(a.n_in);
        for (int i = 0; i < a.n_in; ++i) in[i] = a.in[i].shape;
        return make(nc, key, Spec{a.node, in.data(), a.n_in, a.out.shape, a.training}, backward);
    }
};

OnednnBackend::OnednnBackend(int threads)
    : threads_(threads > 0 ? threads : omp_get_num_procs()),
      state_(std::make_unique<State>()),
      native_(make_backend("native", threads_)) {}

OnednnBackend::~OnednnBackend() = default;

void OnednnBackend::prepare(const Node& node, const Shape* in, int n_in, const Shape& out) {
    ThreadScope threads(threads_);
    State::NodeCache& nc = state_->nodes[&node];
    nc = State::NodeCache{};  // a new plan: drop what an earlier plan (or an earlier node at this address) made
    state_->make(nc, {out[0], kInference}, Spec{node, in, n_in, out, false}, false);
}

// oneDNN 2.6 runs batch-statistics BatchNorm on NCHW with a generic loop (ncsp_bnorm:any) that
// took twice the time of the native kernels (blocked layouts would cost a reorder each way), and it
// has no mixed pooling: the native backend runs both.
bool runs_native(const OpArgs& a) { return (a.training && a.node.op == Op::BatchNorm) || a.node.op == Op::MixedPool; }

void OnednnBackend::forward(const OpArgs& a) {
    ThreadScope threads(threads_);
    if (runs_native(a)) return native_->forward(a);
    if (Kernel* k = state_->find(a, false)) return k->forward(state_->ctx, a);
    RefBackend::forward(a);
}

void OnednnBackend::backward(const GradArgs& g) {
    ThreadScope threads(threads_);
    if (runs_native(g.fwd)) return native_->backward(g);
    if (Kernel* k = state_->find(g.fwd, true)) return k->backward(state_->ctx, g);
    RefBackend::backward(g);
}

bool OnednnBackend::accelerates(const Node& node, int n) const {
    auto it = state_->nodes.find(&node);
    if (it == state_->nodes.end()) return false;
    auto k = it->second.kernels.find({n, kInference});
    return k != it->second.kernels.end() && k->second != nullptr;
}

}  // namespace engine::onednn
