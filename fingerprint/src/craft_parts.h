// The stages of crafting (craft.cpp runs them in order): the ensemble and the candidates they
// share, the exit losses, Adam on the pixels, scoring and selection, and the null estimate.
#pragma once
#include <functional>
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

// craft.cpp: the owner and its variants (noise, pruned, o.variant_paths), each with a keep_all plan;
// candidates_per_target starting points per target exit (test images of o.data_dir, else noise);
// the reference models (o.reference_paths), the last of the owner's architecture held out (steers
// false), with plans of batch o.batch (keep_all: for gradients through them).
std::vector<Member> build_ensemble(const engine::Model& model, const CraftOptions& o, engine::Backend& backend);
Candidates starting_points(const engine::Model& model, const std::vector<int>& exits, int per_target,
                           const CraftOptions& o);
std::vector<Member> load_references(const engine::Model& model, const CraftOptions& o, engine::Backend& backend,
                                    bool keep_all);

// craft_loss.cpp: hinge losses on one sample's exits (see craft.h); adds dL/dlogits into grads and
// returns the loss. achieved_margin: how far inside the thresholds the sample sits.
double exit_loss(const std::vector<const float*>& logits, int row, int classes, int target, int target_class,
                 const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads);
float achieved_margin(const std::vector<const float*>& logits, int row, int classes, int target,
                      const std::vector<float>& q);

// craft_label_loss.cpp (craft_label.h): IPGuard's pair (j leads i by [gap/2, gap] at the final
// exit, no earlier exit firing); a CAE member answering `target` with `confidence` at the final exit
// (an earlier exit answers the target or not at all); a CAE steering reference kept below `cap` on
// the target at every exit.
double ipguard_loss(const std::vector<const float*>& logits, int row, int classes, int i, int j, float gap,
                    const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads);
double cae_member_loss(const std::vector<const float*>& logits, int row, int classes, int target, float confidence,
                       const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads);
double cae_reference_loss(const std::vector<const float*>& logits, int row, int classes, int target, float cap,
                          std::vector<std::vector<float>>& grads);

// craft_optimise.cpp: Adam on the pixels of every candidate against a set of members (keep_all
// plans). sample_loss(member, that member's exit logits, row in the batch, candidate id, grads):
// adds dL/dlogits of that row into grads and returns its loss, 0 when the member is satisfied.
using SampleLoss = std::function<double(size_t member, const std::vector<const float*>& logits, int row, int id,
                                        std::vector<std::vector<float>>& grads)>;
void adam_on_pixels(Candidates& c, const std::vector<Member*>& members, int classes, const SampleLoss& sample_loss,
                    const CraftOptions& o);
// The timing fingerprint's loss (exit_loss) on every ensemble member, under its own thresholds.
void optimise(Candidates& c, std::vector<Member>& ensemble, int classes, const CraftOptions& o);

// craft_select.cpp: where each candidate leaves on every model (each under its own thresholds; the
// margin is the owner's, under q), and the best per target exit.
Scores score(Candidates& c, std::vector<Member>& ensemble, std::vector<Member>& references, const std::vector<float>& q,
             int classes, int batch);
std::vector<int> select(const Candidates& c, const Scores& s, const std::vector<int>& exits, int per_target,
                        int per_exit);

// null_estimate.cpp: the match rate an independent model reaches by chance, and how it was made
// (set.null_source, set.info["null_references"], set.info["null_same_arch_references"]).
// chosen: the selected candidates, on which held-out (non-steering) references are measured;
// chance: the floor of the null (1 / exits, 1 / classes); oracle: what a match means, for null_source.
void estimate_null(const Candidates& c, const Scores& s, const std::vector<int>& chosen,
                   const std::vector<Member>& references, double chance, const std::string& oracle,
                   FingerprintSet& set);

}  // namespace fp
