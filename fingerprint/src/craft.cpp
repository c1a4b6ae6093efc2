#include "fingerprint/craft.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "craft_parts.h"
#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/plan.h"
#include "engine/train/params.h"

namespace fp {

using namespace engine;

namespace {

Model with_weight_noise(const Model& base, float sigma, uint64_t seed) {
    Model m = base;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> gauss(0.0f, sigma);
    for (auto& n : m.graph.nodes)
        if (n.op == Op::Constant && n.trainable && n.value.shape().rank >= 2)
            for (auto& v : n.value.values()) v *= 1.0f + gauss(rng);
    return m;
}

}  // namespace

std::vector<Member> build_ensemble(const Model& model, const CraftOptions& o, Backend& backend) {
    std::vector<Member> ensemble;
    ensemble.push_back({"owner", model, nullptr});
    for (int v = 0; v < o.noise_variants; ++v)
        ensemble.push_back(
            {"noise" + std::to_string(v), with_weight_noise(model, o.weight_noise, o.seed * 1000 + v), nullptr});
    for (double f : o.prune_variants) {
        Model m = model;
        train::magnitude_prune(m.graph, f);
        ensemble.push_back({"pruned" + std::to_string(int(f * 100)), std::move(m), nullptr});
    }
    for (const auto& path : o.variant_paths) ensemble.push_back({path, load_model(path), nullptr});
    for (auto& m : ensemble) {  // plans last: they hold references to the models, which stay put now
        check(m.model.num_exits() == model.num_exits(), m.name + ": has " + std::to_string(m.model.num_exits()) +
                                                            " exits, the model " + std::to_string(model.num_exits()));
        m.plan = std::make_unique<Plan>(m.model, backend, o.batch, /*keep_all=*/true);
    }
    return ensemble;
}

// per_target candidates for each target exit, from real test images or uniform noise.
Candidates starting_points(const Model& model, const std::vector<int>& exits, int per_target, const CraftOptions& o) {
    const int total = per_target * int(exits.size());
    Candidates c;
    c.x = Tensor(model.input_shape(total));
    c.per = c.x.numel() / total;
    std::mt19937_64 rng(o.seed);
    if (!o.data_dir.empty()) {
        Dataset d = load_dataset_dir(o.data_dir, false);
        check_data_fits(model, d, o.data_dir);
        std::uniform_int_distribution<int64_t> pick(0, d.size() - 1);
        for (int i = 0; i < total; ++i) std::copy_n(d.images.data() + pick(rng) * c.per, c.per, c.row(i));
    } else {
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        for (auto& v : c.x.values()) v = u(rng);
    }
    c.start = c.x;
    for (int i = 0; i < total; ++i) c.target.push_back(exits[i / per_target]);
    c.target_class.assign(total, 0);
    return c;
}

std::vector<Member> load_references(const Model& model, const CraftOptions& o, Backend& backend, bool keep_all) {
    std::vector<Member> references;
    std::vector<std::string> paths = o.reference_paths;
    paths.insert(paths.end(), o.null_reference_paths.begin(), o.null_reference_paths.end());
    for (const auto& path : paths) {
        references.push_back({path, load_model(path), nullptr});
        check(references.back().model.num_exits() >= 2, path + ": a reference model needs at least two exits");
        check(references.back().model.input_shape(1) == model.input_shape(1),
              path + ": a reference model takes inputs of shape " + references.back().model.input_shape(1).str() +
                  ", the model " + model.input_shape(1).str());
    }
    // Held out of selection and measured after it, for the null (null_estimate.cpp): every
    // null_reference_paths model, else the last same-architecture reference. Every other reference
    // steers selection away from inputs that transfer; same-architecture models steering and others
    // held out make the best fingerprint.
    const size_t first_null = o.reference_paths.size();
    int last_same = -1;
    for (size_t r = 0; r < references.size(); ++r)
        if ((references[r].same_arch = same_architecture(model, references[r].model)) && r < first_null)
            last_same = int(r);
    for (size_t r = 0; r < references.size(); ++r) {
        check(r < first_null || references[r].same_arch,
              references[r].name +
                  ": a null reference must share the model's architecture (exits and their "
                  "multiply-adds); give other networks with --reference");
        references[r].steers = first_null < references.size() ? r < first_null : int(r) != last_same;
        references[r].plan = std::make_unique<Plan>(references[r].model, backend, o.batch, keep_all);
    }
    return references;
}

bool same_architecture(const Model& a, const Model& b) {
    const auto ma = exit_macs(a.graph), mb = exit_macs(b.graph);
    if (ma.size() != mb.size()) return false;
    for (size_t k = 0; k < ma.size(); ++k)
        if (std::fabs(double(ma[k]) - double(mb[k])) > 0.01 * double(std::max(ma[k], mb[k]))) return false;
    return true;
}

double oversample_for(int steering_same_arch_references) {
    return std::min(kBaseOversample + kOversamplePerSteeringSeed * steering_same_arch_references, kMaxOversample);
}

FingerprintSet craft_fingerprint(const Model& model, const std::string& model_path, const CraftOptions& o) {
    const int K = model.num_exits();
    std::vector<int> exits = o.exits;
    if (exits.empty()) {
        exits.resize(K);
        std::iota(exits.begin(), exits.end(), 0);
    }
    for (int t : exits)
        check(t >= 0 && t < K, "exit " + std::to_string(t) + " out of range (model has " + std::to_string(K) + ")");
    check(o.per_exit >= 0 && o.steps >= 0 && o.batch >= 1, "--per-exit, --steps and --batch must be positive");
    const int per_exit = o.per_exit > 0 ? o.per_exit : (kDefaultInputs + int(exits.size()) - 1) / int(exits.size());
    const auto& q = model.thresholds;
    const int classes = int(model.graph.infer_shapes(1)[model.graph.outputs[0]].numel());
    auto backend = make_backend(o.backend, o.threads);

    std::vector<Member> ensemble = build_ensemble(model, o, *backend);
    std::vector<Member> references = load_references(model, o, *backend, /*keep_all=*/false);
    const int steering_same = int(
        std::count_if(references.begin(), references.end(), [](const Member& r) { return r.same_arch && r.steers; }));
    const double oversample = o.oversample > 0 ? o.oversample : oversample_for(steering_same);
    const int per_target = int(std::ceil(per_exit * oversample));
    Candidates c = starting_points(model, exits, per_target, o);
    optimise(c, ensemble, classes, o);

    const Scores s = score(c, ensemble, references, q, classes, o.batch);
    const std::vector<int> chosen = select(c, s, exits, per_target, per_exit);

    FingerprintSet set;
    const int M = int(chosen.size());
    Shape shape = c.x.shape();
    shape[0] = M;
    set.inputs = Tensor(shape);
    int ensemble_agree = 0;
    for (int j = 0; j < M; ++j) {
        std::copy_n(c.row(chosen[j]), c.per, set.inputs.data() + int64_t(j) * c.per);
        set.target_exits.push_back(c.target[chosen[j]]);
        set.margins.push_back(s.margin[chosen[j]]);
        ensemble_agree += s.agree[chosen[j]];
    }
    set.model_hash = model_hash(model);
    set.model_name = std::filesystem::path(model_path).filename().string();
    set.thresholds = q;
    for (auto macs : exit_macs(model.graph)) set.exit_macs.push_back(double(macs));

    estimate_null(c, s, chosen, references, 1.0 / K, "exit oracle", set);

    // The owner's latency to each exit on this machine, from the fingerprint inputs themselves.
    Dataset probe_data;
    probe_data.images = set.inputs;
    probe_data.labels.assign(M, 0);
    auto single = make_backend(o.backend, 1);
    for (const auto& st : exit_latencies(model, *single, probe_data, o.latency_reps))
        set.owner_latency_ms.push_back(st.median_ms);

    set.info["steps"] = std::to_string(o.steps);
    set.info["margin"] = std::to_string(o.margin);
    set.info["eps"] = std::to_string(o.eps);
    set.info["seed"] = std::to_string(o.seed);
    set.info["oversample"] = std::to_string(oversample);
    set.info["start"] = o.data_dir.empty() ? "noise" : "data:" + o.data_dir;
    std::string names;
    for (auto& m : ensemble) names += (names.empty() ? "" : ",") + m.name;
    set.info["ensemble"] = names;
    set.info["ensemble_agreement"] = std::to_string(double(ensemble_agree) / (M * double(ensemble.size())));
    return set;
}

}  // namespace fp
