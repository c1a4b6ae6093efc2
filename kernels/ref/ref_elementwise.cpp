#include "ref_kernels.h"

namespace engine::ref {

namespace {

// Offset into an operand of shape `s` (right-aligned against the output, broadcast where 1)
// of the output element whose multi-index is `idx` in an output of rank `rank`.
int64_t broadcast_offset(const Shape& s, const int64_t* idx, int rank) {
    int64_t off = 0;
    for (int i = 0; i < s.rank; ++i) {
        int64_t d = s[i];
        int64_t v = d == 1 ? 0 : idx[rank - s.rank + i];
        off = off * d + v;
    }
    return off;
}

template <typename Visit>
void for_each_broadcast(const Shape& ys, const Shape& as, const Shape& bs, Visit visit) {
    int64_t idx[Shape::kMaxRank] = {};
    const int64_t total = ys.numel();
    for (int64_t i = 0; i < total; ++i) {
        visit(i, broadcast_offset(as, idx, ys.rank), broadcast_offset(bs, idx, ys.rank));
        for (int d = ys.rank - 1; d >= 0; --d) {
            if (++idx[d] < ys[d]) break;
            idx[d] = 0;
        }
    }
}

}  // namespace

void binary_forward(Op op, TensorView a, TensorView b, TensorView y) {
    for_each_broadcast(y.shape, a.shape, b.shape, [&](int64_t i, int64_t ia, int64_t ib) {
        float u = a[ia], v = b[ib];
        switch (op) {
            case Op::Add:
                y[i] = u + v;
                break;
            case Op::Sub:
                y[i] = u - v;
                break;
            case Op::Mul:
                y[i] = u * v;
                break;
            default:
                y[i] = u / v;
                break;
        }
    });
}

void binary_backward(Op op, TensorView a, TensorView b, TensorView gy, TensorView ga, TensorView gb) {
    for_each_broadcast(gy.shape, a.shape, b.shape, [&](int64_t i, int64_t ia, int64_t ib) {
        float g = gy[i], u = a[ia], v = b[ib];
        float da = 1, db = 1;
        switch (op) {
            case Op::Add:
                break;
            case Op::Sub:
                db = -1;
                break;
            case Op::Mul:
                da = v;
                db = u;
                break;
            default:
                da = 1 / v;
                db = -u / (v * v);
                break;
        }
        if (ga.data) ga[ia] += g * da;
        if (gb.data) gb[ib] += g * db;
    });
}

}  // namespace engine::ref
