#include "cuda/cuda_host_plan.h"

#include <algorithm>
#include <climits>

#include "engine/error.h"

namespace engine::cuda {

namespace {

int as_int(int64_t v, const Node& node, const char* what) {
    if (v < 0 || v > INT_MAX)
        fail("cuda conv '" + node.name + "': " + what + " " + std::to_string(v) + " is out of range");
    return static_cast<int>(v);
}

}  // namespace

int64_t ConvParams::padded_input_floats() const {
    if (!explicit_pad) return 0;
    return int64_t(n) * c * (h + pad_top + pad_bottom) * (w + pad_left + pad_right);
}

bool same_conv(const ConvParams& a, const ConvParams& b) {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w && a.k == b.k && a.kh == b.kh && a.kw == b.kw &&
           a.oh == b.oh && a.ow == b.ow && a.pad_h == b.pad_h && a.pad_w == b.pad_w && a.stride_h == b.stride_h &&
           a.stride_w == b.stride_w && a.dil_h == b.dil_h && a.dil_w == b.dil_w && a.groups == b.groups &&
           a.explicit_pad == b.explicit_pad && a.pad_top == b.pad_top && a.pad_left == b.pad_left &&
           a.pad_bottom == b.pad_bottom && a.pad_right == b.pad_right;
}

ConvParams conv_params(const Node& node, const Shape& x, const Shape& w, const Shape& y) {
    const std::string where = "cuda conv '" + node.name + "' (x " + x.str() + ", w " + w.str() + ", y " + y.str() + ")";
    if (x.rank != 4 || w.rank != 4 || y.rank != 4) fail(where + ": only 2-D convolutions (rank-4 tensors) run on cuda");
    const Attrs& a = node.attrs;
    ConvParams p{};
    p.n = as_int(x[0], node, "batch");
    p.c = as_int(x[1], node, "channels");
    p.h = as_int(x[2], node, "height");
    p.w = as_int(x[3], node, "width");
    p.k = as_int(w[0], node, "filters");
    p.kh = as_int(w[2], node, "kernel height");
    p.kw = as_int(w[3], node, "kernel width");
    p.groups = as_int(a.groups, node, "groups");
    p.stride_h = as_int(a.stride[0], node, "stride");
    p.stride_w = as_int(a.stride[1], node, "stride");
    p.dil_h = as_int(a.dilation[0], node, "dilation");
    p.dil_w = as_int(a.dilation[1], node, "dilation");
    p.pad_top = as_int(a.pad[0], node, "pad");
    p.pad_left = as_int(a.pad[1], node, "pad");
    p.pad_bottom = as_int(a.pad[2], node, "pad");
    p.pad_right = as_int(a.pad[3], node, "pad");
    if (p.groups < 1 || p.c % p.groups != 0 || p.k % p.groups != 0 || w[1] * p.groups != x[1])
        fail(where + ": groups " + std::to_string(p.groups) + " do not divide the channels");
    if (p.stride_h < 1 || p.stride_w < 1 || p.dil_h < 1 || p.dil_w < 1)
        fail(where + ": stride and dilation must be >= 1");
    p.explicit_pad = p.pad_top != p.pad_bottom || p.pad_left != p.pad_right;
    p.pad_h = p.explicit_pad ? 0 : p.pad_top;
    p.pad_w = p.explicit_pad ? 0 : p.pad_left;
    const int64_t eff_h = int64_t(p.kh - 1) * p.dil_h + 1, eff_w = int64_t(p.kw - 1) * p.dil_w + 1;
    const int64_t span_h = int64_t(p.h) + p.pad_top + p.pad_bottom - eff_h;
    const int64_t span_w = int64_t(p.w) + p.pad_left + p.pad_right - eff_w;
    if (span_h < 0 || span_w < 0) fail(where + ": the kernel is larger than the padded input");
    p.oh = static_cast<int>(span_h / p.stride_h + 1);
    p.ow = static_cast<int>(span_w / p.stride_w + 1);
    if (y[0] != x[0] || y[1] != w[0] || y[2] != p.oh || y[3] != p.ow)
        fail(where + ": output shape disagrees with the attributes (expected [" + std::to_string(p.n) + "," +
             std::to_string(p.k) + "," + std::to_string(p.oh) + "," + std::to_string(p.ow) + "])");
    return p;
}

int choose_algo(const std::vector<AlgoCandidate>& candidates, size_t memory_limit) {
    for (size_t i = 0; i < candidates.size(); ++i) {
        const AlgoCandidate& c = candidates[i];
        if (c.ok && c.deterministic && c.memory <= memory_limit) return static_cast<int>(i);
    }
    return -1;
}

std::string describe_candidates(const std::vector<AlgoCandidate>& candidates) {
    std::string s;
    for (const auto& c : candidates) {
        if (!s.empty()) s += ", ";
        s += "algo " + std::to_string(c.algo) + (c.ok ? "" : " failed") + (c.deterministic ? "" : " nondeterministic") +
             " " + std::to_string(c.memory) + " B";
    }
    return s.empty() ? "none" : s;
}

BroadcastDims broadcast_dims(const Shape& a, const Shape& b, const Shape& y) {
    BroadcastDims d{};
    d.rank = y.rank;
    auto strides = [&](const Shape& s, int64_t* out, const char* which) {
        if (s.rank > y.rank)
            fail(std::string("broadcast: operand ") + which + " " + s.str() + " has more dimensions than " + y.str());
        int64_t stride = 1;
        for (int i = y.rank - 1; i >= 0; --i) {
            const int si = i - (y.rank - s.rank);
            const int64_t extent = si >= 0 ? s[si] : 1;
            if (extent != 1 && extent != y[i])
                fail(std::string("broadcast: operand ") + which + " " + s.str() + " does not broadcast to " + y.str());
            out[i] = extent == 1 ? 0 : stride;
            stride *= extent;
        }
        return s.numel() == y.numel();
    };
    for (int i = 0; i < y.rank; ++i) d.y[i] = y[i];
    d.a_same = strides(a, d.a_stride, "a");
    d.b_same = strides(b, d.b_stride, "b");
    return d;
}

Launch launch_1d(int64_t n, int threads, int64_t max_blocks) {
    const int64_t blocks = std::clamp<int64_t>((n + threads - 1) / threads, 1, max_blocks);
    return {static_cast<unsigned>(blocks), static_cast<unsigned>(threads)};
}

std::vector<int> batch_buckets(int max_batch) {
    check(max_batch >= 1, "cuda early exit: batch size must be at least 1");
    std::vector<int> b{max_batch};
    int p = 1;
    while (p * 2 < max_batch) p *= 2;
    for (; p >= 1; p /= 2)
        if (p < max_batch) b.push_back(p);
    return b;
}

}  // namespace engine::cuda
