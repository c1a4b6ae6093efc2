#include "native_winograd_wgrad_impl.h"

namespace engine::native {

bool winograd_wgrad_fits(const Shape& x, const Shape& w, const Shape& y) {
    return x[1] % 8 == 0 && w[0] % 8 == 0 && x[2] % 4 == 0 && x[3] % 8 == 0 && y[2] == x[2] && y[3] == x[3];
}

size_t winograd_wgrad_scratch_per_thread(const Shape& x, const Shape& w) { return scratch_floats(dims_of(x, w[0])); }

void winograd_weight_grad(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch, Isa isa) {
    if (x.shape[1] % 16 == 0 && gy.shape[1] % 16 == 0 && isa == Isa::avx512)
        return winograd_weight_grad_avx512(x, gy, gw, n0, n1, scratch);
    weight_grad<__m256>(x, gy, gw, n0, n1, scratch);
}

}  // namespace engine::native
