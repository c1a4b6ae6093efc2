#include <algorithm>
#include <cstdio>

#include "craft_parts.h"
#include "engine/error.h"
#include "engine/exit_policy.h"

namespace fp {

using namespace engine;

Scores score(Candidates& c, std::vector<Member>& ensemble, std::vector<Member>& references, const std::vector<float>& q,
             int classes, int batch) {
    const int total = int(c.target.size());
    Scores s{std::vector<int>(total, -1), std::vector<int>(total, 0), std::vector<int>(total, 0),
             std::vector<float>(total, 0),
             std::vector<std::vector<char>>(references.size(), std::vector<char>(total, 0))};
    std::vector<const float*> logits;
    auto run = [&](Member& m, int first, int n) {  // a reference may have another number of exits
        m.plan->run_all(c.row(first), n);
        logits.resize(m.model.num_exits());
        for (int k = 0; k < m.model.num_exits(); ++k) logits[k] = m.plan->exit_logits(k).data;
    };
    for (int first = 0; first < total; first += batch) {
        const int n = std::min(batch, total - first);
        for (size_t v = 0; v < ensemble.size(); ++v) {
            run(ensemble[v], first, n);
            auto ex = exits_under_policy(logits, n, classes, v == 0 ? q : ensemble[v].model.thresholds);
            for (int i = 0; i < n; ++i) {
                s.agree[first + i] += ex[i] == c.target[first + i];
                if (v == 0) {
                    s.owner_exit[first + i] = ex[i];
                    s.margin[first + i] = achieved_margin(logits, i, classes, c.target[first + i], q);
                }
            }
        }
        for (size_t r = 0; r < references.size(); ++r) {
            run(references[r], first, n);
            auto ex = exits_under_policy(logits, n, classes, references[r].model.thresholds);
            for (int i = 0; i < n; ++i) {
                s.transfer_by_ref[r][first + i] = ex[i] == c.target[first + i];
                if (references[r].steers) s.transfers[first + i] += s.transfer_by_ref[r][first + i];
            }
        }
    }
    return s;
}

// Per target exit, the best per_exit candidates that leave the owner exactly there: fewest
// transfers to steering references, then most ensemble agreement, then largest margin.
std::vector<int> select(const Candidates& c, const Scores& s, const std::vector<int>& exits, int per_target,
                        int per_exit) {
    std::vector<int> chosen;
    for (size_t e = 0; e < exits.size(); ++e) {
        std::vector<int> pool;
        for (int i = int(e) * per_target; i < int(e + 1) * per_target; ++i)
            if (s.owner_exit[i] == c.target[i]) pool.push_back(i);
        std::sort(pool.begin(), pool.end(), [&](int a, int b) {
            if (s.transfers[a] != s.transfers[b]) return s.transfers[a] < s.transfers[b];
            if (s.agree[a] != s.agree[b]) return s.agree[a] > s.agree[b];
            return s.margin[a] > s.margin[b];
        });
        check(!pool.empty(), "exit " + std::to_string(exits[e]) + ": no crafted candidate leaves the model there" +
                                 " (try more --steps, a smaller --margin or another --seed)");
        if (int(pool.size()) < per_exit)
            std::fprintf(stderr, "warning: only %zu of %d inputs for exit %d reached it\n", pool.size(), per_exit,
                         exits[e]);
        pool.resize(std::min<size_t>(pool.size(), size_t(per_exit)));
        chosen.insert(chosen.end(), pool.begin(), pool.end());
    }
    return chosen;
}

}  // namespace fp
