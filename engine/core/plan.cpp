#include "engine/plan.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "engine/error.h"
#include "fuse_conv.h"
#include "fuse_training.h"

namespace engine {

namespace {

constexpr int kNever = std::numeric_limits<int>::max();

// Every buffer in the arena (itself line-aligned) starts on a 64-byte line.
int64_t aligned(int64_t n) { return whole_lines(n); }

// First-fit placement of buffers with known lifetimes: a buffer may reuse the space of
// any buffer already released (ggml-alloc's liveness-based reuse, without its free list).
class ArenaPlanner {
public:
    int64_t place(int64_t size) {
        int64_t at = 0;
        for (const auto& [off, len] : live_) {  // live_ is sorted by offset
            if (off - at >= size) break;
            at = std::max(at, off + len);
        }
        live_.insert(std::upper_bound(live_.begin(), live_.end(), std::make_pair(at, int64_t(0))), {at, size});
        peak_ = std::max(peak_, at + size);
        return at;
    }
    void release(int64_t offset) {
        auto it = std::find_if(live_.begin(), live_.end(), [&](auto& b) { return b.first == offset; });
        if (it != live_.end()) live_.erase(it);
    }
    int64_t peak() const { return peak_; }

private:
    std::vector<std::pair<int64_t, int64_t>> live_;
    int64_t peak_ = 0;
};

}  // namespace

Plan::Plan(const Model& model, Backend& backend, int max_batch, bool keep_all)
    : model_(model), backend_(backend), max_batch_(max_batch), keep_all_(keep_all) {
    const Graph& g = model.graph;
    g.validate();
    check(max_batch >= 1, "plan: batch size must be at least 1");
    shapes_ = g.infer_shapes(max_batch);
    const int count = static_cast<int>(g.nodes.size());
    for (const Node& n : g.nodes) nodes_.push_back(&n);
    if (!keep_all_ && backend_.fuses_conv_epilogue()) fuse_conv_epilogues(g, shapes_, nodes_, fused_);
    if (keep_all_ && backend_.fuses_training_elementwise()) fuse_training_elementwise(g, shapes_, nodes_, fused_);

    // Which values carry the batch in dim 0: shapes at batch 1 and 2 differ exactly there.
    auto s1 = g.infer_shapes(1), s2 = g.infer_shapes(2);
    batched_.assign(count, false);
    for (int i = 0; i < count; ++i) {
        if (s1[i] == s2[i]) continue;
        bool only_dim0 = s1[i].rank == s2[i].rank && s1[i][0] == 1 && s2[i][0] == 2;
        for (int d = 1; only_dim0 && d < s1[i].rank; ++d) only_dim0 = s1[i][d] == s2[i][d];
        check(only_dim0, "node '" + g.nodes[i].name + "': batch does not stay in dimension 0 (" + s2[i].str() + ")");
        batched_[i] = true;
    }

    segments_ = exit_segments(nodes_, g.outputs);

    // Liveness over the execution order; inputs are bound at position -1, exits live forever.
    std::vector<int> position(count, -1);
    int pos = 0;
    for (auto& seg : segments_)
        for (int i : seg) position[i] = pos++;
    last_use_.assign(count, -1);
    for (auto& seg : segments_)
        for (int i : seg)
            for (int j : nodes_[i]->inputs) last_use_[j] = std::max(last_use_[j], position[i]);
    for (int out : g.outputs) last_use_[out] = kNever;
    if (keep_all_)
        for (auto& v : last_use_) v = kNever;

    offset_.assign(count, -1);
    ArenaPlanner arena;
    auto size_of = [&](int i) { return aligned(shapes_[i].numel()); };
    // Run chunk by chunk (run_all), a chunk's pass runs the nodes again over space that earlier
    // chunks' values of inputs and exits still hold: those take space of their own, first, kept to the end.
    const bool chunked = !keep_all_ && backend_.inference_chunk() > 0;
    if (chunked)
        for (int v : g.outputs) offset_[v] = arena.place(size_of(v)), last_use_[v] = kNever;
    for (int i : g.inputs) {
        offset_[i] = arena.place(size_of(i));
        if (chunked) last_use_[i] = kNever;
    }
    pos = 0;
    size_t scratch = 0;
    std::vector<Shape> in_shapes;
    for (auto& seg : segments_)
        for (int i : seg) {
            if (offset_[i] < 0) offset_[i] = arena.place(size_of(i));
            for (int j : nodes_[i]->inputs)
                if (last_use_[j] == pos && offset_[j] >= 0) arena.release(offset_[j]);
            ++pos;
            in_shapes.clear();
            for (int j : nodes_[i]->inputs) in_shapes.push_back(shapes_[j]);
            const int n_in = static_cast<int>(in_shapes.size());
            scratch = std::max(scratch, backend_.scratch_floats(*nodes_[i], in_shapes.data(), n_in, shapes_[i]));
            backend_.prepare(*nodes_[i], in_shapes.data(), n_in, shapes_[i]);
        }
    for (int i : g.inputs)
        if (last_use_[i] < 0) arena.release(offset_[i]);
    device_ = backend_.device_memory();
    if (!device_) {
        arena_.assign(arena.peak(), 0.0f);
        scratch_.assign(scratch, 0.0f);
        arena_base_ = arena_.data();
        scratch_base_ = scratch_.data();
    } else {
        // The same layout in device memory, and every constant in one block, uploaded here.
        arena_base_ = backend_.device_alloc(std::max<int64_t>(arena.peak(), 1));
        scratch_base_ = scratch ? backend_.device_alloc(scratch) : nullptr;
        const_device_.assign(count, nullptr);
        std::vector<int64_t> const_at(count, -1);
        int64_t total = 0;
        for (int i = 0; i < count; ++i)  // nodes_, not the graph: fusion may have folded weights
            if (nodes_[i]->op == Op::Constant && nodes_[i]->value.numel() > 0) {
                const_at[i] = total;
                total += aligned(nodes_[i]->value.numel());
            }
        const_block_ = backend_.device_alloc(std::max<int64_t>(total, 1));
        const_floats_ = total;
        for (int i = 0; i < count; ++i)
            if (const_at[i] >= 0) const_device_[i] = const_block_ + const_at[i];
        const_staging_.assign(total, 0.0f);
        upload_constants();
        host_values_.resize(count);
        host_grads_.resize(count);
    }

    // Values read by later segments must follow the samples that stay (compaction).
    int end = -1;
    for (auto& seg : segments_) {
        end += static_cast<int>(seg.size());
        std::vector<int> live;
        for (int i = 0; i < count; ++i)
            if (offset_[i] >= 0 && position[i] <= end && last_use_[i] > end && batched_[i]) live.push_back(i);
        live_after_.push_back(std::move(live));
    }

    macs_to_exit_ = exit_macs(nodes_, segments_, s1);

    if (keep_all_) {
        // One gradient buffer per value that can carry a gradient (ops, inputs, trainable constants).
        // On a device, trainable constants first: every parameter gradient then comes back in one copy.
        grad_offset_.assign(count, -1);
        int64_t at = 0;
        if (device_)
            for (int i = 0; i < count; ++i)
                if (g.nodes[i].op == Op::Constant && g.nodes[i].trainable) {
                    grad_offset_[i] = at;
                    at += aligned(shapes_[i].numel());
                }
        param_grad_floats_ = device_ ? at : 0;
        for (int i = 0; i < count; ++i)
            if (g.nodes[i].op != Op::Constant || (!device_ && g.nodes[i].trainable)) {
                grad_offset_[i] = at;
                at += aligned(shapes_[i].numel());
            }
        grad_floats_ = at;
        if (!device_) {
            grad_arena_.assign(at, 0.0f);
            grad_base_ = grad_arena_.data();
        } else {
            grad_base_ = backend_.device_alloc(std::max<int64_t>(at, 1));
            host_param_grads_.assign(param_grad_floats_, 0.0f);
        }
    }
    row_of_.resize(max_batch);
    keep_rows_.resize(max_batch);
    size_t max_inputs = 0;
    for (const Node* n : nodes_) max_inputs = std::max(max_inputs, n->inputs.size());
    in_views_.resize(max_inputs);
    grad_views_.resize(max_inputs);

    // An inference plan runs once here, on one sample of zeros, so that the backend transforms and
    // packs its weights (and makes its per-thread buffers) at load: the first real run is then as
    // fast as every later one, and allocates nothing either.
    if (!keep_all_) {
        for (int i : g.inputs) {
            TensorView v = view_of(i, 1);
            if (device_)
                backend_.device_zero(v.data, v.numel());
            else
                std::fill(v.data, v.data + v.numel(), 0.0f);
        }
        n_current_ = 1;
        for (auto& seg : segments_)
            for (int i : seg) run_node(i, 1, false, 0);
        // A device backend may run early exit itself (the cuda backend builds a CUDA graph here,
        // for the model's thresholds); host backends never get here.
        if (device_ && g.inputs.size() == 1 && batched_[g.inputs[0]] &&
            static_cast<int>(model.thresholds.size()) == model.num_exits()) {
            early_thresholds_ = model.thresholds;
            early_ = backend_.make_early_exit(*this, early_thresholds_.data());
        }
    }
}

Plan::~Plan() {
    early_.reset();  // it refers to this plan's buffers
    if (!device_) return;
    backend_.device_free(const_block_);
    backend_.device_free(arena_base_);
    backend_.device_free(scratch_base_);
    backend_.device_free(grad_base_);
}

TensorView Plan::view_of(int node, int n, int first) const {
    const Node& nd = *nodes_[node];
    if (nd.op == Op::Constant)
        return {device_ ? const_device_[node] : const_cast<float*>(nd.value.data()), nd.value.shape()};
    Shape s = shapes_[node];
    if (!batched_[node]) return {arena_base_ + offset_[node], s};
    s[0] = n;
    return {arena_base_ + offset_[node] + first * (s.numel() / n), s};
}

TensorView Plan::to_host(TensorView v, int node, bool grad) const {
    if (!device_) return v;
    std::vector<float>& copy = (grad ? host_grads_ : host_values_)[node];
    copy.resize(v.numel());  // grows to the largest batch once, then stays
    backend_.download(copy.data(), v.data, v.numel());
    return {copy.data(), v.shape};
}

TensorView Plan::value(int node) const {
    if (offset_.at(node) < 0 && nodes_[node]->op != Op::Constant)
        fail("plan: node '" + model_.graph.nodes[node].name +
             "' was fused into the node after it; its value is not kept");
    return to_host(view_of(node, n_current_), node, false);
}

TensorView Plan::exit_logits(int exit) const {
    const int node = model_.graph.outputs.at(exit);
    return to_host(view_of(node, n_current_), node, false);
}

void Plan::upload_constants() {
    // One copy through a host staging block rather than one per constant.
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (const_device_[i])
            std::memcpy(const_staging_.data() + (const_device_[i] - const_block_), nodes_[i]->value.data(),
                        sizeof(float) * nodes_[i]->value.numel());
    backend_.upload(const_block_, const_staging_.data(), const_floats_);
}

void Plan::bind_inputs(const float* const* inputs, int n) {
    if (n < 1 || n > max_batch_)  // not check(): its message would be built on every call
        fail("plan: batch of " + std::to_string(n) + " is outside 1.." + std::to_string(max_batch_));
    n_current_ = n;
    const auto& ins = model_.graph.inputs;
    for (size_t k = 0; k < ins.size(); ++k) {
        TensorView v = view_of(ins[k], n);
        if (device_)
            backend_.upload(v.data, inputs[k], v.numel());
        else
            std::memcpy(v.data, inputs[k], sizeof(float) * v.numel());
    }
}

OpArgs Plan::args_for(int node, int n, bool training, uint64_t seed, int first) {
    const Node& nd = *nodes_[node];
    for (size_t k = 0; k < nd.inputs.size(); ++k) in_views_[k] = view_of(nd.inputs[k], n, first);
    return OpArgs{nd,
                  in_views_.data(),
                  static_cast<int>(nd.inputs.size()),
                  view_of(node, n, first),
                  scratch_base_,
                  training,
                  seed,
                  /*weights_fixed=*/!keep_all_};
}

void Plan::run_node(int node, int n, bool training, uint64_t seed, int first) {
    backend_.forward(args_for(node, n, training, seed, first));
}

void Plan::run_all(const float* const* inputs, int n, bool training, uint64_t step_seed) {
    if (training && !keep_all_ && !fused_.empty())
        fail("plan: training needs a plan made with keep_all (this one fused convolution epilogues)");
    const Graph& g = model_.graph;
    if (device_ && keep_all_) upload_constants();  // the host's are the truth: an optimiser may have moved them
    bind_inputs(inputs, n);
    // Each chunk's pass runs every node on the chunk's rows of each value. The inputs and exits have
    // space of their own (see the constructor), so later passes leave earlier chunks' results alone.
    const int chunk = training || keep_all_ || device_ ? 0 : backend_.inference_chunk();
    for (int first = 0; first < n;) {
        const int part = chunk > 0 ? std::min(chunk, n - first) : n;
        for (auto& seg : segments_)
            for (int i : seg) run_node(i, part, training, step_seed, first);
        first += part;
    }
    if (device_ && training) {  // BatchNorm's running statistics were updated on the device
        backend_.download(const_staging_.data(), const_block_, const_floats_);
        for (const Node* nd : nodes_)
            if (nd->op == Op::BatchNorm)
                for (int k = 3; k < 5; ++k) {
                    const int j = nd->inputs[k];
                    Tensor& v = const_cast<Tensor&>(g.nodes[j].value);
                    std::memcpy(v.data(), const_staging_.data() + (const_device_[j] - const_block_),
                                sizeof(float) * v.numel());
                }
    }
}

void Plan::run_segment(int segment, int n) {
    for (int i : segments_.at(segment)) run_node(i, n, false, 0);
}

void Plan::compact(int segment, int n_keep, int n_before) {
    for (int v : live_after_[segment]) {
        TensorView t = view_of(v, n_before);
        const int64_t row = t.numel() / n_before;
        for (int r = 0; r < n_keep; ++r)
            if (keep_rows_[r] != r) {
                if (device_)
                    backend_.device_copy(t.data + r * row, t.data + keep_rows_[r] * row, row);
                else
                    std::memmove(t.data + r * row, t.data + keep_rows_[r] * row, sizeof(float) * row);
            }
    }
    for (int r = 0; r < n_keep; ++r) row_of_[r] = row_of_[keep_rows_[r]];
}

void Plan::run_early(const float* input, int n, const float* thresholds, SampleResult* results) {
    const Graph& g = model_.graph;
    if (g.inputs.size() != 1 || !batched_[g.inputs[0]]) fail("plan: early exit needs one batched input");
    if (early_) {  // the backend's own runner; other thresholds than it was made for make a new one
        if (!std::equal(early_thresholds_.begin(), early_thresholds_.end(), thresholds)) {
            early_.reset();
            early_thresholds_.assign(thresholds, thresholds + early_thresholds_.size());
            early_ = backend_.make_early_exit(*this, thresholds);
        }
        if (early_) {
            if (n < 1 || n > max_batch_)
                fail("plan: batch of " + std::to_string(n) + " is outside 1.." + std::to_string(max_batch_));
            early_->run(input, n, results);
            n_current_ = 0;
            return;
        }
    }
    const auto start = std::chrono::steady_clock::now();
    bind_inputs(&input, n);
    for (int r = 0; r < n; ++r) row_of_[r] = r;
    const int last = static_cast<int>(segments_.size()) - 1;
    for (int k = 0; k <= last && n > 0; ++k) {
        for (int i : segments_[k]) run_node(i, n, false, 0);
        TensorView logits = to_host(view_of(g.outputs[k], n), g.outputs[k], false);
        const int64_t classes = logits.numel() / n;
        int n_keep = 0;
        const int64_t ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
        for (int r = 0; r < n; ++r) {
            const TopClass top = top_class(logits.data + r * classes, classes);
            if (exit_fires(k, last + 1, top.prob, thresholds)) {
                results[row_of_[r]] = {top.cls, top.prob, k, ns};
            } else {
                keep_rows_[n_keep++] = r;
            }
        }
        if (n_keep > 0 && n_keep < n && k < last) compact(k, n_keep, n);
        n = n_keep;
        n_current_ = n;
    }
}

TensorView Plan::input_grad() const {
    check(keep_all_, "plan: gradients need a plan made with keep_all");
    int in = model_.graph.inputs.at(0);
    Shape s = shapes_[in];
    if (batched_[in]) s[0] = n_current_;
    return to_host({grad_base_ + grad_offset_[in], s}, in, true);
}

TensorView Plan::param_grad(int node) const {
    if (!keep_all_ || grad_offset_.at(node) < 0)
        fail("plan: node '" + model_.graph.nodes.at(node).name +
             "' has no gradient (not trainable, or no keep_all plan)");
    Shape s = shapes_[node];
    if (batched_[node]) s[0] = n_current_;
    if (device_ && param_grads_downloaded_)  // the trainer may scale them in place: a host copy
        return {const_cast<float*>(host_param_grads_.data()) + grad_offset_[node], s};
    return to_host({grad_base_ + grad_offset_[node], s}, node, true);
}

void Plan::backward(const float* const* grad_exit, bool need_input_grad, bool training, uint64_t step_seed,
                    bool need_param_grads) {
    check(keep_all_, "plan: gradients need a plan made with keep_all");
    const Graph& g = model_.graph;
    const int count = static_cast<int>(g.nodes.size());
    const int n = n_current_;
    param_grads_downloaded_ = false;

    // A value needs a gradient when a trainable parameter (or the input, if asked) lies behind it.
    requires_grad_.assign(count, 0);
    for (int i = 0; i < count; ++i) {
        const Node& nd = *nodes_[i];
        if (nd.op == Op::Constant)
            requires_grad_[i] = nd.trainable && need_param_grads;
        else if (nd.op == Op::Input)
            requires_grad_[i] = need_input_grad;
        else
            for (int j : nd.inputs) requires_grad_[i] |= requires_grad_[j];
    }
    auto grad_view = [&](int i) -> TensorView {
        Shape s = shapes_[i];
        if (batched_[i]) s[0] = n;
        return {grad_base_ + grad_offset_[i], s};
    };
    auto zero = [&](TensorView v) {
        if (device_)
            backend_.device_zero(v.data, v.numel());
        else
            std::fill(v.data, v.data + v.numel(), 0.0f);
    };
    // Gradients are not zeroed up front (about a gigabyte for ResNet-56 at batch 128): each value's
    // gradient is written by the first backward call that reaches it, or zeroed just before it.
    // Parameters' are small and read whether reached or not: they start at zero.
    grad_written_.assign(count, 0);
    for (int i = 0; i < count; ++i)
        if (g.nodes[i].op == Op::Constant && requires_grad_[i]) {
            zero(grad_view(i));
            grad_written_[i] = 1;
        }
    for (size_t k = 0; k < g.outputs.size(); ++k) {
        if (!grad_exit[k]) continue;
        const int out = g.outputs[k];
        TensorView gv = grad_view(out);
        if (device_) {
            if (grad_written_[out])
                fail("plan: exits " + std::to_string(k) +
                     " and an earlier one are one node; seed only one of them on a device backend");
            backend_.upload(gv.data, grad_exit[k], gv.numel());
        } else if (grad_written_[out]) {
            for (int64_t e = 0; e < gv.numel(); ++e) gv[e] += grad_exit[k][e];
        } else {
            std::copy(grad_exit[k], grad_exit[k] + gv.numel(), gv.data);
        }
        grad_written_[out] = 1;
    }
    const bool writes_fresh = backend_.writes_fresh_grads();
    for (int s = static_cast<int>(segments_.size()) - 1; s >= 0; --s)
        for (auto it = segments_[s].rbegin(); it != segments_[s].rend(); ++it) {
            const int i = *it;
            if (!requires_grad_[i] || !grad_written_[i]) continue;  // no gradient reached it: it passes on none
            OpArgs fwd = args_for(i, n, training, step_seed);
            const Node& nd = *nodes_[i];
            unsigned fresh = 0;
            for (size_t k = 0; k < nd.inputs.size(); ++k) {
                const int j = nd.inputs[k];
                grad_views_[k] = requires_grad_[j] ? grad_view(j) : TensorView{};
                if (!requires_grad_[j] || grad_written_[j]) continue;
                // A value at two inputs of one node gets two contributions: it must start at zero.
                const bool repeated = std::count(nd.inputs.begin(), nd.inputs.end(), j) > 1;
                if (writes_fresh && !repeated && k < 32)
                    fresh |= 1u << k;
                else
                    zero(grad_views_[k]);
            }
            backend_.backward(GradArgs{fwd, grad_view(i), grad_views_.data(), fresh});
            for (int j : nd.inputs)
                if (requires_grad_[j]) grad_written_[j] = 1;
        }
    for (int j : g.inputs)  // an input no gradient reached
        if (requires_grad_[j] && !grad_written_[j]) zero(grad_view(j));
    if (device_ && need_param_grads && param_grad_floats_ > 0) {  // every parameter gradient in one copy
        backend_.download(host_param_grads_.data(), grad_base_, param_grad_floats_);
        param_grads_downloaded_ = true;
    }
}

}  // namespace engine
