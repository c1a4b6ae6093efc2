#include <algorithm>
#include <filesystem>

#include "craft_parts.h"

namespace fp {

// The null hypothesis: how often an independent model leaves at the target. Measured on the
// reference models over every candidate that reached its target on the owner, before the
// selection preferred those that do not transfer (after it, the estimate would be biased
// low), plus a margin, and never below chance. With no reference models: 0.5.
void estimate_null(const Candidates& c, const Scores& s, const std::vector<Member>& references, int num_exits,
                   FingerprintSet& set) {
    if (references.empty()) {
        set.null_match_rate = 0.5;
        set.null_source = "default 0.5 (no reference models given)";
        return;
    }
    int valid = 0;
    std::vector<int> hits(references.size(), 0);
    for (int i = 0; i < int(c.target.size()); ++i) {
        if (s.owner_exit[i] != c.target[i]) continue;
        ++valid;
        for (size_t r = 0; r < references.size(); ++r) hits[r] += s.transfer_by_ref[r][i];
    }
    double worst = 0;
    std::string per_ref;
    for (size_t r = 0; r < references.size(); ++r) {
        const double rate = double(hits[r]) / valid;
        worst = std::max(worst, rate);
        per_ref += (per_ref.empty() ? "" : ", ") + std::filesystem::path(references[r].name).filename().string() + "=" +
                   std::to_string(rate);
    }
    set.null_match_rate = std::clamp(std::max(worst + 0.05, 1.0 / num_exits), 0.01, 0.95);
    set.null_source = "reference models (exit oracle, before selection): " + per_ref;
}

}  // namespace fp
