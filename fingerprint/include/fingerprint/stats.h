// Statistics for verification decisions.
#pragma once
#include <cstdint>
#include <vector>

namespace fp {

// P(X >= k) for X ~ Binomial(n, p), computed in log space.
double binomial_upper_tail(int k, int n, double p);
// P(X <= k) for X ~ Binomial(n, p), computed in log space.
double binomial_lower_tail(int k, int n, double p);

// Spearman rank correlation (average ranks for ties); 0 when either side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// One-sided permutation p-value of spearman(a, b) >= observed (seeded, `rounds` shuffles).
double spearman_permutation_p(const std::vector<double>& a, const std::vector<double>& b, int rounds, uint64_t seed);

double median(std::vector<double> v);
// The index of the entry of v nearest to x (the first of equals; 0 for an empty v).
int nearest_index(const std::vector<double>& v, double x);
// The q-quantile of v (linear interpolation between order statistics; 0 for an empty v).
double quantile(std::vector<double> v, double q);
// The same, with the standard error of that estimate, distribution-free: the slope of the sorted
// sample around rank q (n - 1) times the binomial spread sqrt(n q (1 - q)) of that rank. For a
// median of normal samples it tends to the familiar 1.25 sigma / sqrt(n).
void quantile_and_error(std::vector<double> v, double q, double& value, double& error);
// Median absolute deviation scaled to a normal standard deviation (x 1.4826).
double mad_sigma(const std::vector<double>& v);

}  // namespace fp
