// The stages of crafting (craft.cpp runs them in order): the ensemble and the candidates they
// share, the exit losses, Adam on the pixels, scoring and selection, and the null estimate.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/plan.h"
#include "fingerprint/craft.h"
#include "fingerprint/fingerprint_set.h"

namespace fp {

struct Member {  // one model of the ensemble, or one reference model
    std::string name;
    engine::Model model;
    std::unique_ptr<engine::Plan> plan;
    bool steers = true;      // reference: selection avoids the candidates that transfer to it
    bool same_arch = false;  // reference: of the owner's architecture (same_architecture)
};

struct Candidates {
    engine::Tensor x, start;  // [total, C, H, W]: current pixels and starting pixels
    std::vector<int> target, target_class;
    int64_t per = 0;  // floats per image
    float* row(int i) { return x.data() + int64_t(i) * per; }
};

struct Scores {
    std::vector<int> owner_exit, agree, transfers;  // agree: ensemble members; transfers: steering references
    std::vector<float> margin;
    std::vector<std::vector<char>> transfer_by_ref;  // [reference][candidate]: left at the target there
};

// craft_loss.cpp: hinge losses on one sample's exits (see craft.h); adds dL/dlogits into grads and
// returns the loss. achieved_margin: how far inside the thresholds the sample sits.
double exit_loss(const std::vector<const float*>& logits, int row, int classes, int target, int target_class,
                 const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads);
float achieved_margin(const std::vector<const float*>& logits, int row, int classes, int target,
                      const std::vector<float>& q);

// craft_optimise.cpp: Adam on the pixels of every candidate against the whole ensemble.
void optimise(Candidates& c, std::vector<Member>& ensemble, const std::vector<float>& q, int classes,
              const CraftOptions& o);

// craft_select.cpp: where each candidate leaves on every model, and the best per target exit.
Scores score(Candidates& c, std::vector<Member>& ensemble, std::vector<Member>& references, const std::vector<float>& q,
             int classes, int batch);
std::vector<int> select(const Candidates& c, const Scores& s, const std::vector<int>& exits, int per_target,
                        int per_exit);

// null_estimate.cpp: the match rate an independent model reaches by chance, and how it was made
// (set.null_source, set.info["null_references"], set.info["null_same_arch_references"]).
// chosen: the selected candidates, on which held-out (non-steering) references are measured.
void estimate_null(const Candidates& c, const Scores& s, const std::vector<int>& chosen,
                   const std::vector<Member>& references, int num_exits, FingerprintSet& set);

}  // namespace fp
