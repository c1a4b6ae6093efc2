#include "engine/batchnorm_fold.h"

#include <cmath>

#include "engine/error.h"

namespace engine {

void fold_batchnorm_into_conv(Tensor& weight, Tensor& bias, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                              const Tensor& var, float epsilon) {
    const int64_t K = weight.shape()[0];
    check(bias.numel() == K && gamma.numel() == K && beta.numel() == K && mean.numel() == K && var.numel() == K,
          "fold_batchnorm_into_conv: " + std::to_string(K) +
              " output channels, but a bias or BatchNorm parameter differs");
    const int64_t per_k = weight.numel() / K;
    for (int64_t k = 0; k < K; ++k) {
        const double s = gamma[k] / std::sqrt(double(var[k]) + epsilon);
        for (int64_t e = 0; e < per_k; ++e) weight[k * per_k + e] = float(weight[k * per_k + e] * s);
        bias[k] = float((double(bias[k]) - mean[k]) * s + beta[k]);
    }
}

}  // namespace engine
