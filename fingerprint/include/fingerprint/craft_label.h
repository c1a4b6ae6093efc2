// Prediction-based ("label") fingerprints: the baselines the timing fingerprint is compared with
// (issue 15). Each input comes with the class the owner's model answers (or is made to answer)
// under its exit policy; a suspect matches an input where it answers that class.
//   misclassified  the owner's misclassified test images; expected label: the owner's wrong answer.
//   ipguard        IPGuard-style boundary points (Cao et al. 2021): from test images or noise,
//                  optimised so that a random class pair (i, j) holds the top two logits of the
//                  owner's final exit with j ahead by between gap/2 and gap; expected label: j.
//                  A near tie keeps every earlier exit below its threshold, so the final exit answers.
//   cae            conferrable adversarial examples (Lukas et al. 2021): targeted adversarial
//                  examples whose target class the owner and its own copies (the ensemble of
//                  craft.h: pruned, noisy, fine-tuned) answer, while steering --reference models are
//                  pushed away from it; expected label: the target class.
// The null is the rate at which the held-out same-architecture reference answers the expected
// labels on the selected inputs, made as the timing null is (null_estimate.cpp).
#pragma once
#include <string>

#include "engine/model.h"
#include "fingerprint/craft.h"
#include "fingerprint/fingerprint_set.h"

namespace fp {

enum class LabelKind { misclassified, ipguard, cae };
const char* label_kind_name(LabelKind kind);
LabelKind parse_label_kind(const std::string& name);  // throws naming the text

struct LabelOptions {
    int inputs = 40;             // fingerprint size (the timing default on a 4-exit model: 10 per exit)
    float gap = 1.0f;            // ipguard: the logit lead of j over i is kept within [gap / 2, gap]
    float confidence = 0.6f;     // cae: the target's probability at the final exit of each ensemble member
    float reference_cap = 0.3f;  // cae: the target's probability at every exit of a steering reference
};

// Uses of CraftOptions: data_dir (misclassified: required; others: start from test images, else
// noise), steps, lr, eps, seed, oversample, batch, backend, threads, progress, reference_paths;
// the ensemble options (noise/prune variants, variant_paths) for cae only: IPGuard and the
// misclassified images are the owner's alone.
FingerprintSet craft_label_fingerprint(const engine::Model& model, const std::string& model_path, LabelKind kind,
                                       const CraftOptions& options, const LabelOptions& label_options);

}  // namespace fp
