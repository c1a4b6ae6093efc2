#include "engine/train/loss.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/exit_policy.h"

namespace engine::train {

namespace {

int argmax(const float* z, int classes) {
    int best = 0;
    for (int c = 1; c < classes; ++c)
        if (z[c] > z[best]) best = c;
    return best;
}

void check_labels(const int* labels, int n, int classes, const char* what) {
    for (int r = 0; r < n; ++r)
        check(labels[r] >= 0 && labels[r] < classes, std::string(what) + ": label " + std::to_string(labels[r]) +
                                                         " outside [0, " + std::to_string(classes) + ")");
}

}  // namespace

double softmax_cross_entropy(const float* logits, const int* labels, int n, int classes, float* grad, float weight,
                             int* correct) {
    check(n >= 1 && classes >= 1, "cross-entropy: empty batch");
    check_labels(labels, n, classes, "cross-entropy");
    std::vector<double> p(classes);
    double total = 0;
    int hits = 0;
    for (int r = 0; r < n; ++r) {
        const float* z = logits + int64_t(r) * classes;
        const double lse = softmax_row(z, classes, p.data());
        total += lse - z[labels[r]];
        hits += argmax(z, classes) == labels[r];
        if (!grad) continue;
        float* g = grad + int64_t(r) * classes;
        const double scale = double(weight) / n;
        for (int c = 0; c < classes; ++c) g[c] = float(scale * (p[c] - (c == labels[r] ? 1.0 : 0.0)));
    }
    if (correct) *correct = hits;
    return total / n;
}

double distillation_loss(const float* student, const float* teacher, const int* labels, int n, int classes,
                         float temperature, float alpha, float* grad, float weight, int* correct) {
    check(temperature > 0, "distillation: temperature must be positive");
    check(alpha >= 0 && alpha <= 1, "distillation: alpha must lie in [0, 1]");
    const double ce = softmax_cross_entropy(student, labels, n, classes, grad, weight * (1 - alpha), correct);
    if (alpha == 0) return (1 - alpha) * ce;
    const double inv_t = 1.0 / temperature, t2 = double(temperature) * temperature;
    std::vector<double> ps(classes), pt(classes);
    double kl = 0;
    for (int r = 0; r < n; ++r) {
        const float* s = student + int64_t(r) * classes;
        const float* t = teacher + int64_t(r) * classes;
        const double lse_s = softmax_row(s, classes, ps.data(), inv_t);
        const double lse_t = softmax_row(t, classes, pt.data(), inv_t);
        for (int c = 0; c < classes; ++c)  // pt * (log pt - log ps), with log p = z/T - lse
            if (pt[c] > 0) kl += pt[c] * ((t[c] * inv_t - lse_t) - (s[c] * inv_t - lse_s));
        if (!grad) continue;
        // d(T^2 KL)/ds = T^2 * (ps - pt) / T
        float* g = grad + int64_t(r) * classes;
        const double scale = double(weight) * alpha * t2 * inv_t / n;
        for (int c = 0; c < classes; ++c) g[c] += float(scale * (ps[c] - pt[c]));
    }
    return (1 - alpha) * ce + alpha * t2 * kl / n;
}

double trades_loss(const float* clean, const float* adv, const int* labels, int n, int classes, float beta,
                   float* grad_clean, float* grad_adv, float weight, int* correct) {
    check(beta >= 0, "TRADES: beta must not be negative");
    const double ce = softmax_cross_entropy(clean, labels, n, classes, grad_clean, weight, correct);
    std::vector<double> pc(classes), pa(classes), log_ratio(classes);
    double kl = 0;
    for (int r = 0; r < n; ++r) {
        const float* zc = clean + int64_t(r) * classes;
        const float* za = adv + int64_t(r) * classes;
        const double lse_c = softmax_row(zc, classes, pc.data()), lse_a = softmax_row(za, classes, pa.data());
        double row = 0;
        for (int c = 0; c < classes; ++c) {
            log_ratio[c] = (zc[c] - lse_c) - (za[c] - lse_a);  // log pc - log pa
            row += pc[c] * log_ratio[c];
        }
        kl += row;
        if (!grad_clean) continue;
        const double scale = double(weight) * beta / n;
        float* gc = grad_clean + int64_t(r) * classes;
        float* ga = grad_adv + int64_t(r) * classes;
        for (int c = 0; c < classes; ++c) {
            gc[c] += float(scale * pc[c] * (log_ratio[c] - row));  // d KL / d clean
            ga[c] = float(scale * (pa[c] - pc[c]));                // d KL / d adv
        }
    }
    return ce + beta * kl / n;
}

std::vector<float> sdn_exit_weights(int num_exits, double progress) {
    static const float caps[] = {0.15f, 0.3f, 0.45f, 0.6f, 0.75f, 0.9f};
    const int ics = num_exits - 1;
    progress = std::clamp(progress, 0.0, 1.0);
    std::vector<float> w(num_exits, 1.0f);
    for (int i = 0; i < ics; ++i) {
        const double cap = ics <= 6 ? caps[i] : 0.15 + 0.75 * i / (ics - 1);
        w[i] = float(cap * progress);
    }
    return w;
}

std::vector<float> final_exit_weights(int num_exits) {
    std::vector<float> w(num_exits, 0.0f);
    w.back() = 1.0f;
    return w;
}

}  // namespace engine::train
