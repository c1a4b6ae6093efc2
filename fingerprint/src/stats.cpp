#include "fingerprint/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace fp {

static double binomial_log_pmf(int i, int n, double p) {
    return std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) + i * std::log(p) +
           (n - i) * std::log1p(-p);
}

double binomial_upper_tail(int k, int n, double p) {
    if (k <= 0) return 1.0;
    if (k > n) return 0.0;
    if (p <= 0) return 0.0;
    if (p >= 1) return 1.0;
    double total = 0;
    for (int i = k; i <= n; ++i) total += std::exp(binomial_log_pmf(i, n, p));
    return std::min(1.0, total);
}

double binomial_lower_tail(int k, int n, double p) {
    if (k >= n) return 1.0;
    if (k < 0) return 0.0;
    if (p <= 0) return 1.0;
    if (p >= 1) return 0.0;
    double total = 0;
    for (int i = 0; i <= k; ++i) total += std::exp(binomial_log_pmf(i, n, p));
    return std::min(1.0, total);
}

static std::vector<double> ranks(const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size();) {
        size_t j = i;
        while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
        for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * (i + j);
        i = j + 1;
    }
    return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
    auto ra = ranks(a), rb = ranks(b);
    const double n = double(a.size());
    if (n < 2) return 0;
    double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < ra.size(); ++i) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

double spearman_permutation_p(const std::vector<double>& a, const std::vector<double>& b, int rounds, uint64_t seed) {
    const double observed = spearman(a, b);
    std::mt19937_64 rng(seed);
    std::vector<double> shuffled = b;
    int at_least = 0;
    for (int r = 0; r < rounds; ++r) {
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        at_least += spearman(a, shuffled) >= observed;
    }
    return (at_least + 1.0) / (rounds + 1.0);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double quantile(std::vector<double> v, double q) {
    double value = 0, error = 0;
    quantile_and_error(std::move(v), q, value, error);
    return value;
}

void quantile_and_error(std::vector<double> v, double q, double& value, double& error) {
    value = error = 0;
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    const int n = int(v.size());
    const double pos = std::clamp(q, 0.0, 1.0) * (n - 1);
    const int below = int(std::floor(pos));
    const int above = std::min(below + 1, n - 1);
    value = v[below] + (pos - below) * (v[above] - v[below]);
    if (n < 2) return;
    const double spread = std::sqrt(n * q * (1 - q));
    int lo = std::max(0, int(std::floor(pos - spread))), hi = std::min(n - 1, int(std::ceil(pos + spread)));
    // Tied values (a floor in the timings, a coarse clock) would claim a noise of zero: widen the
    // window until it spans distinct values; all of them equal leave no estimate of the noise at all.
    while (v[hi] == v[lo] && (lo > 0 || hi < n - 1)) lo = std::max(0, lo - 1), hi = std::min(n - 1, hi + 1);
    error = v[hi] > v[lo] ? (v[hi] - v[lo]) / (hi - lo) * spread : std::numeric_limits<double>::infinity();
}

int nearest_index(const std::vector<double>& v, double x) {
    int best = 0;
    for (int k = 1; k < int(v.size()); ++k)
        if (std::fabs(x - v[k]) < std::fabs(x - v[best])) best = k;
    return best;
}

double mad_sigma(const std::vector<double>& v) {
    double m = median(v);
    std::vector<double> dev;
    for (double x : v) dev.push_back(std::fabs(x - m));
    return 1.4826 * median(dev);
}

}  // namespace fp
