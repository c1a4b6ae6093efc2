#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "craft_parts.h"

namespace fp {

// The null hypothesis: how often an independent model leaves at the target. Independent models of
// the owner's own architecture transfer far more than other networks do (issue 15: other
// architectures gave 0.285 with the margin, independent ResNet-56 reached 0.41-0.43), and selection
// overfits to the references that steer it (weights/small_s1 crafted from test images: the steering
// small_s2 matched 11 of 40 selected inputs, the unseen small_s3 21), so:
//   held-out same-architecture references (--null-reference, else the last same-architecture
//   --reference; craft.cpp) are measured on the selected inputs, rates r_1..r_R; an independent
//   model's rate is one more draw, so null = mean(r) + 2 sigma sqrt(1 + 1/R) + kNullMargin, a
//   two-sigma prediction bound, with sigma^2 the larger of the rates' sample variance and the least
//   spread assumed, r (1 - r) / M + kSeedSpread^2 (one reference at 0.350 gives 0.825 on 40 inputs,
//   where the old rate + 2 standard errors gave 0.551 and small_s6 then matched 0.700); never below
//   the largest held-out rate + kNullMargin + 2 standard errors;
//   the others steer selection and are listed with their rates, unused (biased low);
//   with other architectures only: their largest rate over every candidate that reached its target
//   on the owner, before selection (after it, biased low) + kCrossArchNullMargin;
//   with none: kUncalibratedNull.
// Never below chance. info records every reference, its architecture, role and rate.
// Label sets (craft_label.cpp) come through here too: their Candidates::target is the expected
// class, Scores::owner_exit the owner's answer, transfer_by_ref a reference giving the expected class.
void estimate_null(const Candidates& c, const Scores& s, const std::vector<int>& chosen,
                   const std::vector<Member>& references, double chance, const std::string& oracle,
                   FingerprintSet& set) {
    set.info["null_same_arch_references"] = "0";
    if (references.empty()) {
        set.null_match_rate = kUncalibratedNull;
        set.null_source =
            "UNCALIBRATED default " + std::to_string(kUncalibratedNull).substr(0, 4) + " (no reference models given)";
        set.info["null_references"] = "[]";
        return;
    }
    int valid = 0;
    std::vector<int> before(references.size(), 0), after(references.size(), 0);
    for (int i = 0; i < int(c.target.size()); ++i) {
        if (s.owner_exit[i] != c.target[i]) continue;
        ++valid;
        for (size_t r = 0; r < references.size(); ++r) before[r] += s.transfer_by_ref[r][i];
    }
    for (int i : chosen)
        for (size_t r = 0; r < references.size(); ++r) after[r] += s.transfer_by_ref[r][i];
    const int M = int(chosen.size());
    double worst_other = -1;
    std::vector<double> held_rates;
    int same_steering = 0;
    std::string held_names, other_names;  // held out; steering (any architecture)
    nlohmann::json refs = nlohmann::json::array();
    auto add_name = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; };
    for (size_t r = 0; r < references.size(); ++r) {
        const bool held = !references[r].steers;
        same_steering += references[r].same_arch && !held;
        const double rate_before = valid ? double(before[r]) / valid : 1.0, rate_after = M ? double(after[r]) / M : 1.0;
        const std::string name = std::filesystem::path(references[r].name).filename().string();
        char item[200];
        std::snprintf(item, sizeof item, "%s=%.3f", name.c_str(), held ? rate_after : rate_before);
        add_name(held ? held_names : other_names, item);
        if (held)
            held_rates.push_back(rate_after);
        else
            worst_other = std::max(worst_other, rate_before);
        refs.push_back({{"name", name},
                        {"same_architecture", references[r].same_arch},
                        {"role", held ? "held out: null" : "steers selection"},
                        {"rate_selected", rate_after},
                        {"rate_candidates", rate_before},
                        {"candidates", valid},
                        {"selected", M}});
    }
    double null_rate;
    const int held_count = int(held_rates.size());
    if (held_count > 0) {
        const double R = held_count, inputs = std::max(M, 1);
        const double worst_held = *std::max_element(held_rates.begin(), held_rates.end());
        double mean = 0, variance = 0;
        for (double r : held_rates) mean += r / R;
        for (double r : held_rates) variance += R > 1 ? (r - mean) * (r - mean) / (R - 1) : 0.0;
        const double least = std::max(mean * (1 - mean), 0.01) / inputs + kSeedSpread * kSeedSpread;
        const double sigma = std::sqrt(std::max(variance, least));
        const double worst = worst_held + 2 * std::sqrt(std::max(worst_held * (1 - worst_held), 0.01) / inputs);
        null_rate = std::max(mean + 2 * sigma * std::sqrt(1 + 1 / R), worst) + kNullMargin;
        set.info["null_held_out_mean"] = std::to_string(mean);
        set.info["null_held_out_sigma"] = std::to_string(sigma);
        set.null_source = "held-out same-architecture references (" + oracle + ", selected inputs): " + held_names;
        if (!other_names.empty()) set.null_source += "; steered selection, not used: " + other_names;
    } else {
        null_rate = worst_other + kCrossArchNullMargin;
        set.null_source = "OTHER-ARCHITECTURE references only (+" + std::to_string(kCrossArchNullMargin).substr(0, 4) +
                          " margin, uncalibrated for independent copies of this architecture): " + other_names;
    }
    set.null_match_rate = std::clamp(std::max(null_rate, chance), 0.01, 0.95);
    set.info["null_references"] = refs.dump();
    set.info["null_same_arch_references"] = std::to_string(held_count + same_steering);
}

}  // namespace fp
