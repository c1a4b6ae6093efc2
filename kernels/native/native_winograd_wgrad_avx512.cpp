#include "native_winograd_wgrad_impl.h"

namespace engine::native {

void winograd_weight_grad_avx512(TensorView x, TensorView gy, float* gw, int64_t n0, int64_t n1, float* scratch) {
    weight_grad<__m512>(x, gy, gw, n0, n1, scratch);
}

}  // namespace engine::native
