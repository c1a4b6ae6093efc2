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
//   the last same-architecture reference is held out of selection (craft.cpp) and measured on the
//   selected inputs: null = its rate + kNullMargin + 2 standard errors of that rate (M inputs);
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
    double worst_held = -1, worst_other = -1;
    int held_count = 0, same_steering = 0;
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
            worst_held = std::max(worst_held, rate_after), ++held_count;
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
    if (held_count > 0) {
        null_rate =
            worst_held + kNullMargin + 2 * std::sqrt(std::max(worst_held * (1 - worst_held), 0.01) / std::max(M, 1));
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
