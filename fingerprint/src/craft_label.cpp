// Label fingerprints (craft_label.h) on the timing fingerprint's machinery: the ensemble, starting
// points, references and Adam of craft.cpp / craft_optimise.cpp, and its null (null_estimate.cpp).
// Here Candidates::target is the expected class and Scores::owner_exit the owner's answer (class),
// so that a candidate is valid, and a reference transfers, where they are equal.
#include "fingerprint/craft_label.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "craft_parts.h"
#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/exit_policy.h"
#include "engine/plan.h"

namespace fp {

using namespace engine;

const char* label_kind_name(LabelKind kind) {
    switch (kind) {
        case LabelKind::misclassified:
            return "misclassified";
        case LabelKind::ipguard:
            return "ipguard";
        case LabelKind::cae:
            return "cae";
    }
    return "misclassified";
}

LabelKind parse_label_kind(const std::string& name) {
    for (LabelKind k : {LabelKind::misclassified, LabelKind::ipguard, LabelKind::cae})
        if (name == label_kind_name(k)) return k;
    fail("unknown label fingerprint kind '" + name + "' (misclassified, ipguard or cae)");
}

namespace {

struct Answers {  // a model's answers under its own exit policy
    std::vector<int> cls, exit;
    std::vector<float> margin;  // top probability minus the runner-up's at the exit answered
};

Answers answer(Member& m, const float* x, int total, int64_t per, int classes, int batch) {
    Answers a;
    std::vector<const float*> logits(m.model.num_exits());
    std::vector<double> p(classes);
    for (int first = 0; first < total; first += batch) {
        const int n = std::min(batch, total - first);
        m.plan->run_all(x + first * per, n);
        for (int k = 0; k < m.model.num_exits(); ++k) logits[k] = m.plan->exit_logits(k).data;
        const std::vector<int> exits = exits_under_policy(logits, n, classes, m.model.thresholds);
        for (int i = 0; i < n; ++i) {
            const int e = exits[i];
            softmax_row(logits[e] + int64_t(i) * classes, classes, p.data());
            std::vector<double> sorted = p;
            std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
            a.cls.push_back(int(std::max_element(p.begin(), p.end()) - p.begin()));
            a.exit.push_back(e);
            a.margin.push_back(float(sorted[0] - sorted[1]));
        }
    }
    return a;
}

int classes_of(const Model& m) { return int(m.graph.infer_shapes(1)[m.graph.outputs[0]].numel()); }

// The owner's misclassified test images, in a seeded random order until `want` are found.
Candidates misclassified_images(Member& owner, const CraftOptions& o, int want, int classes,
                                std::vector<int>& true_label, std::vector<int>& source) {
    Dataset d = load_dataset_dir(o.data_dir, false);
    check_data_fits(owner.model, d, o.data_dir);
    const int64_t per = d.images.numel() / d.size();
    std::vector<int> order(d.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(o.seed));
    std::vector<float> batch(size_t(o.batch) * per);
    for (size_t first = 0; first < order.size() && int(source.size()) < want; first += o.batch) {
        const int n = int(std::min<size_t>(o.batch, order.size() - first));
        for (int i = 0; i < n; ++i)
            std::copy_n(d.images.data() + int64_t(order[first + i]) * per, per, batch.data() + int64_t(i) * per);
        const Answers a = answer(owner, batch.data(), n, per, classes, o.batch);
        for (int i = 0; i < n && int(source.size()) < want; ++i)
            if (a.cls[i] != d.labels[order[first + i]]) source.push_back(order[first + i]);
    }
    check(!source.empty(), o.data_dir + ": the model misclassifies none of its test images");
    Candidates c;
    Shape shape = owner.model.input_shape(int64_t(source.size()));
    c.x = Tensor(shape);
    c.per = per;
    for (size_t i = 0; i < source.size(); ++i) {
        std::copy_n(d.images.data() + int64_t(source[i]) * per, per, c.row(int(i)));
        true_label.push_back(d.labels[source[i]]);
    }
    c.start = c.x;
    return c;
}

// The best `count` valid candidates: fewest steering references answering the expected label, then
// most ensemble members answering it, then the margin (smallest first for boundary points). At most
// ceil(2 count / classes) per expected class while others are left: decide_verdict raises the null to
// the largest share of one label (a suspect answering one class for everything matches that share).
std::vector<int> select_labels(const Candidates& c, const Scores& s, int count, int classes, bool small_margin) {
    std::vector<int> pool;
    for (int i = 0; i < int(c.target.size()); ++i)
        if (s.owner_exit[i] == c.target[i]) pool.push_back(i);
    std::stable_sort(pool.begin(), pool.end(), [&](int a, int b) {
        if (s.transfers[a] != s.transfers[b]) return s.transfers[a] < s.transfers[b];
        if (s.agree[a] != s.agree[b]) return s.agree[a] > s.agree[b];
        return small_margin ? s.margin[a] < s.margin[b] : s.margin[a] > s.margin[b];
    });
    check(!pool.empty(), "no candidate gives the expected label on the model (try more --steps or another --seed)");
    const int cap = std::max(1, (2 * count + classes - 1) / classes);
    std::vector<int> chosen, per_class(classes, 0);
    std::vector<char> taken(c.target.size(), 0);
    for (int pass = 0; pass < 2; ++pass)
        for (int i : pool)
            if (int(chosen.size()) < count && !taken[i] && (pass == 1 || per_class[c.target[i]] < cap)) {
                chosen.push_back(i), taken[i] = 1, per_class[c.target[i]]++;
            }
    if (int(chosen.size()) < count)
        std::fprintf(stderr, "warning: only %zu of %d candidates give the expected label\n", chosen.size(), count);
    return chosen;
}

}  // namespace

FingerprintSet craft_label_fingerprint(const Model& model, const std::string& model_path, LabelKind kind,
                                       const CraftOptions& o, const LabelOptions& lo) {
    check(lo.inputs >= 1 && o.steps >= 0 && o.batch >= 1, "--inputs, --steps and --batch must be positive");
    check(kind != LabelKind::misclassified || !o.data_dir.empty(),
          "misclassified: needs the test images of a data set (--data)");
    check(lo.gap > 0 && lo.confidence > 0 && lo.confidence < 1 && lo.reference_cap > 0 && lo.reference_cap < 1,
          "label fingerprint: gap must be positive, confidence and reference cap in (0, 1)");
    const int K = model.num_exits(), classes = classes_of(model);
    const auto& q = model.thresholds;
    auto backend = make_backend(o.backend, o.threads);
    std::vector<Member> ensemble;  // the owner first; its copies for CAE only
    if (kind == LabelKind::cae)
        ensemble = build_ensemble(model, o, *backend);
    else {
        ensemble.push_back({"owner", model, nullptr});
        ensemble[0].plan = std::make_unique<Plan>(ensemble[0].model, *backend, o.batch, /*keep_all=*/true);
    }
    std::vector<Member> references = load_references(model, o, *backend, /*keep_all=*/kind == LabelKind::cae);
    for (const auto& r : references)
        check(classes_of(r.model) == classes, r.name + ": a reference model with " +
                                                  std::to_string(classes_of(r.model)) + " classes, the model " +
                                                  std::to_string(classes));

    const int want = int(std::ceil(lo.inputs * (o.oversample > 0 ? o.oversample : kBaseOversample)));
    std::mt19937_64 rng(o.seed + 17);
    std::vector<int> true_label, source, runner_up;
    Candidates c;
    if (kind == LabelKind::misclassified) {
        c = misclassified_images(ensemble[0], o, want, classes, true_label, source);
        c.target = answer(ensemble[0], c.x.data(), int(source.size()), c.per, classes, o.batch).cls;
    } else {
        c = starting_points(model, {K - 1}, want, o);
        const Answers start = answer(ensemble[0], c.x.data(), want, c.per, classes, o.batch);
        std::uniform_int_distribution<int> pick(0, classes - 2);
        for (int i = 0; i < want; ++i) {
            // cae: a target other than the start's answer; ipguard: a random pair (i, j), j expected.
            int t = pick(rng);
            t += t >= start.cls[i];
            c.target[i] = t;
            int other = pick(rng);
            other += other >= t;
            runner_up.push_back(other);
        }
        std::vector<Member*> members;
        for (auto& m : ensemble) members.push_back(&m);
        const size_t E = members.size();
        if (kind == LabelKind::cae)  // steering references join with the opposite loss
            for (auto& r : references)
                if (r.steers) members.push_back(&r);
        adam_on_pixels(
            c, members, classes,
            [&](size_t v, const std::vector<const float*>& logits, int row, int id,
                std::vector<std::vector<float>>& grads) {
                if (kind == LabelKind::ipguard)
                    return ipguard_loss(logits, row, classes, runner_up[id], c.target[id], lo.gap, q, o.margin, grads);
                if (v < E)
                    return cae_member_loss(logits, row, classes, c.target[id], lo.confidence, q, o.margin, grads);
                return cae_reference_loss(logits, row, classes, c.target[id], lo.reference_cap, grads);
            },
            o);
    }

    const int total = int(c.target.size());
    Scores s{std::vector<int>(total, -1), std::vector<int>(total, 0), std::vector<int>(total, 0),
             std::vector<float>(total, 0),
             std::vector<std::vector<char>>(references.size(), std::vector<char>(total, 0))};
    std::vector<int> owner_exit;
    for (size_t v = 0; v < ensemble.size(); ++v) {
        const Answers a = answer(ensemble[v], c.x.data(), total, c.per, classes, o.batch);
        for (int i = 0; i < total; ++i) s.agree[i] += a.cls[i] == c.target[i];
        if (v == 0) s.owner_exit = a.cls, s.margin = a.margin, owner_exit = a.exit;
    }
    for (size_t r = 0; r < references.size(); ++r) {
        const Answers a = answer(references[r], c.x.data(), total, c.per, classes, o.batch);
        for (int i = 0; i < total; ++i) {
            s.transfer_by_ref[r][i] = a.cls[i] == c.target[i];
            if (references[r].steers) s.transfers[i] += s.transfer_by_ref[r][i];
        }
    }
    const std::vector<int> chosen = select_labels(c, s, lo.inputs, classes, kind == LabelKind::ipguard);

    FingerprintSet set;
    set.kind = kLabelKind;
    set.num_classes = classes;
    const int M = int(chosen.size());
    Shape shape = c.x.shape();
    shape[0] = M;
    set.inputs = Tensor(shape);
    int ensemble_agree = 0;
    nlohmann::json truth = nlohmann::json::array(), sources = nlohmann::json::array();
    for (int j = 0; j < M; ++j) {
        const int i = chosen[j];
        std::copy_n(c.row(i), c.per, set.inputs.data() + int64_t(j) * c.per);
        set.target_labels.push_back(c.target[i]);
        set.target_exits.push_back(owner_exit[i]);
        set.margins.push_back(s.margin[i]);
        ensemble_agree += s.agree[i];
        if (kind == LabelKind::misclassified) truth.push_back(true_label[i]), sources.push_back(source[i]);
    }
    set.model_hash = model_hash(model);
    set.model_name = std::filesystem::path(model_path).filename().string();
    set.thresholds = q;
    for (auto macs : exit_macs(model.graph)) set.exit_macs.push_back(double(macs));
    estimate_null(c, s, chosen, references, 1.0 / classes, "label oracle", set);

    set.info["label_kind"] = label_kind_name(kind);
    set.info["seed"] = std::to_string(o.seed);
    if (kind == LabelKind::misclassified) {  // test-set indices and true labels, for anyone to check
        set.info["start"] = "data:" + o.data_dir;
        set.info["true_labels"] = truth.dump();
        set.info["test_indices"] = sources.dump();
    } else {
        set.info["start"] = o.data_dir.empty() ? "noise" : "data:" + o.data_dir;
        set.info["steps"] = std::to_string(o.steps);
        set.info["eps"] = std::to_string(o.eps);
        set.info["margin"] = std::to_string(o.margin);
        if (kind == LabelKind::ipguard) set.info["gap"] = std::to_string(lo.gap);
        if (kind == LabelKind::cae) {
            set.info["confidence"] = std::to_string(lo.confidence);
            set.info["reference_cap"] = std::to_string(lo.reference_cap);
        }
    }
    std::string names;
    for (auto& m : ensemble) names += (names.empty() ? "" : ",") + m.name;
    set.info["ensemble"] = names;
    set.info["ensemble_agreement"] = std::to_string(M ? double(ensemble_agree) / (M * double(ensemble.size())) : 0);
    return set;
}

}  // namespace fp
