#include <cmath>

#include "engine/error.h"
#include "engine/train/schedule.h"

namespace engine::train {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Cosine interpolation from a (pct 0) to b (pct 1), as PyTorch's _annealing_cos.
double anneal_cos(double a, double b, double pct) { return b + (a - b) / 2.0 * (std::cos(kPi * pct) + 1.0); }

}  // namespace

void validate(const ScheduleConfig& c) {
    check(c.kind == "onecycle" || c.kind == "cosine" || c.kind == "multistep" || c.kind == "constant",
          "schedule '" + c.kind + "': unknown (known: onecycle, cosine, multistep, constant)");
    check(std::isfinite(c.lr) && c.lr > 0, "schedule: learning rate must be positive");
    check(c.total_steps >= 1, "schedule: needs at least one step");
    check(c.pct_start > 0 && c.pct_start < 1, "schedule: one-cycle pct_start must lie in (0, 1)");
    check(c.div_factor > 0 && c.final_div_factor > 0, "schedule: one-cycle divisors must be positive");
}

float learning_rate(const ScheduleConfig& c, int64_t step) {
    validate(c);
    const double lr = c.lr;
    if (c.kind == "constant") return c.lr;
    if (c.kind == "cosine") {
        const double t = std::min<double>(double(step), double(c.total_steps));
        return float(c.min_lr + (lr - c.min_lr) * (1 + std::cos(kPi * t / c.total_steps)) / 2);
    }
    if (c.kind == "multistep") {
        double r = lr;
        for (double m : c.milestones)
            if (step >= int64_t(std::llround(m * c.total_steps))) r *= c.gamma;
        return float(r);
    }
    // One-cycle with PyTorch's phase boundaries: warm-up ends at step pct_start*total - 1,
    // annealing at total - 1.
    const double initial = lr / c.div_factor, final_lr = initial / c.final_div_factor;
    const double up_end = double(c.pct_start) * c.total_steps - 1, down_end = double(c.total_steps) - 1;
    const double s = double(step);
    if (s <= up_end) return float(anneal_cos(initial, lr, up_end > 0 ? s / up_end : 1.0));
    if (down_end <= up_end) return float(final_lr);
    return float(anneal_cos(lr, final_lr, std::min(1.0, (s - up_end) / (down_end - up_end))));
}

}  // namespace engine::train
