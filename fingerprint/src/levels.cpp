// From latencies to exits: grouping into levels and mapping levels onto the exit profile.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "fingerprint/stats.h"
#include "fingerprint/verify.h"

namespace fp {

namespace {

// Visits every strictly increasing map of `levels` items into `exits` slots.
template <typename Visit>
void for_each_increasing_map(int levels, int exits, std::vector<int>& map, int at, Visit& visit) {
    if (at == levels) {
        visit(map);
        return;
    }
    const int first = at == 0 ? 0 : map[at - 1] + 1;
    for (int e = first; e <= exits - (levels - at); ++e) {
        map[at] = e;
        for_each_increasing_map(levels, exits, map, at + 1, visit);
    }
}

}  // namespace

std::vector<int> exits_from_latencies(const std::vector<double>& latency_ms, const std::vector<double>& jitter_ms,
                                      const std::vector<double>& exit_profile, double overhead_ms,
                                      std::vector<double>* level_ms_out, std::vector<int>* level_exit_out) {
    const int n = int(latency_ms.size()), exits = int(exit_profile.size());
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return latency_ms[a] < latency_ms[b]; });

    // A new level starts where the gap between sorted medians exceeds both the noise of a median
    // (jitter_ms holds it) and a third of the smallest relative step between adjacent exits of
    // the profile: inputs leaving at one exit differ by noise only, adjacent exits by a step.
    double smallest_step = 1.0;
    for (int k = 1; k < exits; ++k)
        smallest_step = std::min(smallest_step, (exit_profile[k] - exit_profile[k - 1]) / exit_profile[k]);
    const double gap =
        std::max(kLevelGapWidths * median(jitter_ms), smallest_step / 3.0 * (median(latency_ms) - overhead_ms));
    std::vector<std::vector<int>> levels{{order[0]}};
    for (int i = 1; i < n; ++i) {
        if (latency_ms[order[i]] - latency_ms[order[i - 1]] > gap) levels.emplace_back();
        levels.back().push_back(order[i]);
    }
    auto center = [&](const std::vector<int>& members) {
        std::vector<double> v;
        for (int m : members) v.push_back(latency_ms[m]);
        return median(v);
    };
    // More levels than exits. A level of fewer than kMinLevelInputs inputs is then taken for inputs
    // timed apart from the rest, not an exit, and its inputs left undetermined, smallest first (in a
    // simulated check with the machine slow nearly throughout, one input read fast made a fifth
    // level of four exits, and merging the closest levels instead put every other input one exit
    // late: the owner read as no-match). Else noise split a level: merge the closest neighbours.
    // (With no more levels than exits a small level stays: a ResNet-56 copy sent 2 of 12 inputs to
    // exit 3 and 10 to exit 2, and without that level its 6 others were mapped one exit early.)
    while (int(levels.size()) > exits) {
        const auto smallest_level = std::min_element(levels.begin(), levels.end(),
                                                     [](const auto& a, const auto& b) { return a.size() < b.size(); });
        if (int(smallest_level->size()) < kMinLevelInputs) {
            levels.erase(smallest_level);
            continue;
        }
        size_t best = 0;
        double smallest = std::numeric_limits<double>::infinity();
        for (size_t l = 0; l + 1 < levels.size(); ++l) {
            double d = center(levels[l + 1]) - center(levels[l]);
            if (d < smallest) smallest = d, best = l;
        }
        levels[best].insert(levels[best].end(), levels[best + 1].begin(), levels[best + 1].end());
        levels.erase(levels.begin() + long(best) + 1);
    }
    const int L = int(levels.size());
    std::vector<double> log_c(L), weight(L);
    for (int l = 0; l < L; ++l) {
        log_c[l] = std::log(std::max(center(levels[l]) - overhead_ms, 1e-6));
        weight[l] = double(levels[l].size());
    }

    // Latency above the overhead is proportional to the work done: log c_l = log b + log profile[exit].
    // Choose the increasing level->exit map with the smallest weighted residual. A single level
    // fits every exit equally well; it is then mapped assuming the owner's speed (profile scale 1).
    std::vector<int> map(L), best_map(L);
    double best_cost = std::numeric_limits<double>::infinity();
    auto visit = [&](const std::vector<int>& m) {
        double wsum = 0, mean = 0;
        for (int l = 0; l < L; ++l) wsum += weight[l], mean += weight[l] * (log_c[l] - std::log(exit_profile[m[l]]));
        mean /= wsum;
        double cost = 0;
        for (int l = 0; l < L; ++l) {
            double r = log_c[l] - std::log(exit_profile[m[l]]) - (L == 1 ? 0.0 : mean);
            cost += weight[l] * r * r;
        }
        if (cost < best_cost) best_cost = cost, best_map = m;
    };
    for_each_increasing_map(L, exits, map, 0, visit);

    std::vector<int> exit_of(n, -1);
    for (int l = 0; l < L; ++l)
        for (int m : levels[l]) exit_of[m] = best_map[l];
    if (level_ms_out) {
        level_ms_out->clear();
        for (auto& lv : levels) level_ms_out->push_back(center(lv));
    }
    if (level_exit_out) *level_exit_out = best_map;
    return exit_of;
}

std::vector<int> exits_from_profile_fit(const std::vector<double>& latency_ms, const std::vector<double>& jitter_ms,
                                        const std::vector<double>& exit_profile, double overhead_ms,
                                        std::vector<double>* level_ms_out, std::vector<int>* level_exit_out) {
    const int n = int(latency_ms.size()), exits = int(exit_profile.size());
    auto levels_at = [&](double speed) {
        std::vector<double> level(exits);
        for (int k = 0; k < exits; ++k) level[k] = overhead_ms + speed * exit_profile[k];
        return level;
    };
    auto placement_at = [&](double speed) {
        const std::vector<double> level = levels_at(speed);
        std::vector<int> exit_of(n);
        for (int i = 0; i < n; ++i) exit_of[i] = nearest_index(level, latency_ms[i]);
        return exit_of;
    };
    // Alternate nearest-level placement and the least-squares speed for that placement, from
    // starting speeds 0.1x-20x the owner's; keep the fit with the smallest squared residual, and
    // every other fit's placement with its residual.
    double best_speed = 1, best_sse = std::numeric_limits<double>::infinity();
    std::vector<std::pair<double, std::vector<int>>> fits;  // (sse, placement)
    constexpr int kStarts = 200;
    for (int g = 0; g < kStarts; ++g) {
        double speed = 0.1 * std::pow(200.0, double(g) / (kStarts - 1));
        for (int it = 0; it < 50; ++it) {
            const std::vector<double> level = levels_at(speed);
            double num = 0, den = 0;
            for (int i = 0; i < n; ++i) {
                const double p = exit_profile[nearest_index(level, latency_ms[i])];
                num += (latency_ms[i] - overhead_ms) * p, den += p * p;
            }
            const double next = den > 0 ? num / den : speed;
            if (std::fabs(next - speed) <= 1e-12 * speed) break;
            speed = next;
        }
        if (!(speed > 0)) continue;
        const std::vector<double> level = levels_at(speed);
        double sse = 0;
        for (int i = 0; i < n; ++i) {
            const double r = latency_ms[i] - level[nearest_index(level, latency_ms[i])];
            sse += r * r;
        }
        fits.emplace_back(sse, placement_at(speed));
        if (sse < best_sse) best_sse = sse, best_speed = speed;
    }
    // Inputs that another fit nearly as good places at another exit are undetermined: with steps
    // nearly alike, the profile can slip by an exit where one exit holds few inputs.
    std::vector<char> ambiguous(n, 0);
    const std::vector<int> best_placement = placement_at(best_speed);
    for (const auto& [sse, placement] : fits)
        if (sse <= kProfileAmbiguity * best_sse)
            for (int i = 0; i < n; ++i) ambiguous[i] |= placement[i] != best_placement[i];
    std::vector<double> level = levels_at(best_speed), residual_widths;
    for (int i = 0; i < n; ++i)
        residual_widths.push_back(std::fabs(latency_ms[i] - level[nearest_index(level, latency_ms[i])]) /
                                  std::max(jitter_ms[i], 1e-12));
    if (n == 0 || median(residual_widths) > kProfileFitWidths) return {};
    // The profile is only as exact as the owner's timing (or multiply-adds, exit_profile): move each
    // level to the median of the inputs nearest to it, as in k-means, still blind to the targets.
    for (int it = 0; it < 10; ++it) {
        std::vector<std::vector<double>> members(exits);
        for (int i = 0; i < n; ++i) members[nearest_index(level, latency_ms[i])].push_back(latency_ms[i]);
        std::vector<double> moved = level;
        for (int k = 0; k < exits; ++k)
            if (!members[k].empty()) moved[k] = median(members[k]);
        if (moved == level || !std::is_sorted(moved.begin(), moved.end())) break;
        level = moved;
    }
    std::vector<int> exit_of(n);
    for (int i = 0; i < n; ++i) {
        const int e = nearest_index(level, latency_ms[i]);
        double to_next = std::numeric_limits<double>::infinity();  // distance to the midpoint with a neighbour
        if (e > 0) to_next = std::min(to_next, latency_ms[i] - (level[e - 1] + level[e]) / 2);
        if (e + 1 < exits) to_next = std::min(to_next, (level[e] + level[e + 1]) / 2 - latency_ms[i]);
        exit_of[i] = to_next >= kProfileMarginWidths * jitter_ms[i] && !ambiguous[i] ? e : -1;
    }
    // Only the levels at least kMinLevelInputs inputs were placed at: an exit that no input,
    // or only a stray one, reached may be hidden in a neighbour (inputs_in_merged_levels), as where
    // grouping at gaps finds fewer levels than exits.
    if (level_ms_out) level_ms_out->clear();
    if (level_exit_out) level_exit_out->clear();
    std::vector<int> placed(exits, 0);
    for (int e : exit_of)
        if (e >= 0) placed[e]++;
    if (*std::max_element(placed.begin(), placed.end()) < kMinLevelInputs) return {};  // nothing placed
    for (int k = 0; k < exits; ++k) {
        if (placed[k] < kMinLevelInputs) continue;
        if (level_ms_out) level_ms_out->push_back(level[k]);
        if (level_exit_out) level_exit_out->push_back(k);
    }
    return exit_of;
}

}  // namespace fp
