#include "fingerprint/craft.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "cli_common.h"
#include "engine/error.h"
#include "engine/plan.h"
#include "engine/train/params.h"
#include "evaluate.h"

namespace fp {

using namespace engine;

namespace {

struct Member {  // one model of the ensemble, or one reference model
    std::string name;
    Model model;
    std::unique_ptr<Plan> plan;
};

Model with_weight_noise(const Model& base, float sigma, uint64_t seed) {
    Model m = base;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> gauss(0.0f, sigma);
    for (auto& n : m.graph.nodes)
        if (n.op == Op::Constant && n.trainable && n.value.shape().rank >= 2)
            for (auto& v : n.value.values()) v *= 1.0f + gauss(rng);
    return m;
}

void softmax_row(const float* z, int classes, std::vector<double>& p) {
    p.resize(classes);
    float mx = *std::max_element(z, z + classes);
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += p[c] = std::exp(double(z[c]) - mx);
    for (auto& v : p) v /= sum;
}

// Hinge losses on one sample's exits (see craft.h); writes dL/dlogits, returns the loss.
double exit_loss(const std::vector<const float*>& logits, int row, int classes, int target, int target_class,
                 const std::vector<float>& q, float margin, std::vector<std::vector<float>>& grads) {
    std::vector<double> p;
    double loss = 0;
    for (int k = 0; k <= target; ++k) {
        softmax_row(logits[k] + row * classes, classes, p);
        float* g = grads[k].data() + row * classes;
        if (k < target) {  // stay below q_k - margin: push the top class down
            int top = int(std::max_element(p.begin(), p.end()) - p.begin());
            double excess = std::log(p[top]) - std::log(std::max(q[k] - margin, 1e-3f));
            if (excess > 0) {
                loss += excess;
                for (int c = 0; c < classes; ++c) g[c] += float((c == top) - p[c]);
            }
        } else if (k < int(logits.size()) - 1) {  // clear q_t + margin on the target class
            double shortfall = std::log(std::min(q[k] + margin, 0.999f)) - std::log(std::max(p[target_class], 1e-30));
            if (shortfall > 0) {
                loss += shortfall;
                for (int c = 0; c < classes; ++c) g[c] += float(p[c] - (c == target_class));
            }
        }
    }
    return loss;
}

// Probability margin of a sample for its target: how far inside the thresholds it sits.
float achieved_margin(const std::vector<const float*>& logits, int row, int classes, int target,
                      const std::vector<float>& q) {
    std::vector<double> p;
    double m = 1.0;
    for (int k = 0; k <= target && k < int(logits.size()) - 1; ++k) {
        softmax_row(logits[k] + row * classes, classes, p);
        double top = *std::max_element(p.begin(), p.end());
        m = std::min(m, k < target ? q[k] - top : top - q[k]);
    }
    return float(m);
}

}  // namespace

std::vector<int> exits_under_policy(const std::vector<const float*>& logits, int n, int classes,
                                    const std::vector<float>& thresholds) {
    std::vector<int> exit(n, int(logits.size()) - 1);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k + 1 < int(logits.size()); ++k)
            if (top_class(logits[k] + i * classes, classes).prob >= thresholds[k]) {
                exit[i] = k;
                break;
            }
    return exit;
}

FingerprintSet craft_fingerprint(const Model& model, const std::string& model_path, const CraftOptions& o) {
    const int K = model.num_exits();
    std::vector<int> exits = o.exits;
    if (exits.empty()) {
        exits.resize(K);
        std::iota(exits.begin(), exits.end(), 0);
    }
    for (int t : exits) check(t >= 0 && t < K, "fp_gen: exit " + std::to_string(t) + " out of range (model has " + std::to_string(K) + ")");
    check(o.per_exit >= 1 && o.steps >= 0 && o.batch >= 1, "fp_gen: --per-exit, --steps and --batch must be positive");
    const auto& q = model.thresholds;
    auto backend = make_backend(o.backend, o.threads);

    // The ensemble: the model itself, noisy and pruned copies, and given variants.
    std::vector<Member> ensemble;
    ensemble.push_back({"owner", model, nullptr});
    for (int v = 0; v < o.noise_variants; ++v)
        ensemble.push_back({"noise" + std::to_string(v), with_weight_noise(model, o.weight_noise, o.seed * 1000 + v), nullptr});
    for (double f : o.prune_variants) {
        Model m = model;
        train::magnitude_prune(m.graph, f);
        ensemble.push_back({"pruned" + std::to_string(int(f * 100)), std::move(m), nullptr});
    }
    for (const auto& path : o.variant_paths) ensemble.push_back({path, load_model(path), nullptr});
    for (auto& m : ensemble) {
        check(m.model.num_exits() == K, m.name + ": has " + std::to_string(m.model.num_exits()) + " exits, the model " + std::to_string(K));
        m.plan = std::make_unique<Plan>(m.model, *backend, o.batch, /*keep_all=*/true);
    }

    // Starting points: real test images or uniform noise.
    auto in_dims = model.graph.nodes[model.graph.inputs.at(0)].input_dims;
    in_dims[0] = 1;
    const int64_t per = Shape(in_dims).numel();
    const int per_target = int(std::ceil(o.per_exit * o.oversample));
    const int total = per_target * int(exits.size());
    std::mt19937_64 rng(o.seed);
    Tensor x(Shape{total, in_dims[1], in_dims[2], in_dims[3]});
    if (!o.data_dir.empty()) {
        Dataset d = cli::load_dataset_dir(o.data_dir, false);
        check(d.images.numel() / d.size() == per, o.data_dir + ": images do not fit the model input");
        std::uniform_int_distribution<int64_t> pick(0, d.size() - 1);
        for (int i = 0; i < total; ++i) std::copy_n(d.images.data() + pick(rng) * per, per, x.data() + i * per);
    } else {
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        for (auto& v : x.values()) v = u(rng);
    }
    Tensor start = x;
    std::vector<int> target(total), target_class(total, 0);
    for (int i = 0; i < total; ++i) target[i] = exits[i / per_target];

    // Optimise each batch of candidates with Adam on the pixels.
    const int classes = int(model.graph.infer_shapes(1)[model.graph.outputs[0]].numel());
    cli::Progress bar("crafting", int64_t(total) * o.steps, "step");
    std::vector<std::vector<float>> grads(K);
    std::vector<float> m1(size_t(o.batch) * per), m2(size_t(o.batch) * per), gx(size_t(o.batch) * per);
    for (int first = 0; first < total; first += o.batch) {
        const int n = std::min(o.batch, total - first);
        float* xb = x.data() + int64_t(first) * per;
        std::fill(m1.begin(), m1.end(), 0.0f);
        std::fill(m2.begin(), m2.end(), 0.0f);
        // Target class: the class exit t already leans towards at the start.
        ensemble[0].plan->run_all(xb, n);
        for (int i = 0; i < n; ++i) {
            TensorView z = ensemble[0].plan->exit_logits(target[first + i]);
            const float* row = z.data + int64_t(i) * classes;
            target_class[first + i] = int(std::max_element(row, row + classes) - row);
        }
        for (int step = 0; step < o.steps; ++step) {
            std::fill(gx.begin(), gx.end(), 0.0f);
            double loss = 0;
            for (auto& member : ensemble) {
                Plan& plan = *member.plan;
                plan.run_all(xb, n);
                std::vector<const float*> logits(K);
                for (int k = 0; k < K; ++k) {
                    logits[k] = plan.exit_logits(k).data;
                    grads[k].assign(size_t(n) * classes, 0.0f);
                }
                for (int i = 0; i < n; ++i)
                    loss += exit_loss(logits, i, classes, target[first + i], target_class[first + i], q, o.margin, grads);
                std::vector<const float*> seeds(K);
                for (int k = 0; k < K; ++k) seeds[k] = grads[k].data();
                plan.backward(seeds.data(), /*need_input_grad=*/true, false, 0, /*need_param_grads=*/false);
                TensorView g = plan.input_grad();
                for (int64_t e = 0; e < g.numel(); ++e) gx[e] += g[e];
            }
            if (loss == 0) break;  // every candidate satisfies every member with its margin
            const float b1 = 0.9f, b2 = 0.999f;
            const float c1 = 1 - std::pow(b1, float(step + 1)), c2 = 1 - std::pow(b2, float(step + 1));
            for (int64_t e = 0; e < int64_t(n) * per; ++e) {
                m1[e] = b1 * m1[e] + (1 - b1) * gx[e];
                m2[e] = b2 * m2[e] + (1 - b2) * gx[e] * gx[e];
                float v = xb[e] - o.lr * (m1[e] / c1) / (std::sqrt(m2[e] / c2) + 1e-8f);
                if (o.eps >= 0) {
                    const float s = start[int64_t(first) * per + e];
                    v = std::clamp(v, s - o.eps, s + o.eps);
                }
                xb[e] = std::clamp(v, 0.0f, 1.0f);
            }
            if (o.progress) bar.update(int64_t(first) * o.steps + int64_t(n) * (step + 1), " loss " + std::to_string(loss / n));
        }
    }
    if (o.progress) bar.finish();

    // Score the candidates: exact exit on the owner, agreement across the ensemble, margin,
    // and (when reference models are given) not leaving at the target on them.
    std::vector<Member> references;
    for (const auto& path : o.reference_paths) {
        references.push_back({path, load_model(path), nullptr});
        check(references.back().model.num_exits() == K, path + ": reference has a different number of exits");
    }
    for (auto& r : references) r.plan = std::make_unique<Plan>(r.model, *backend, o.batch);  // models stay put now
    std::vector<int> agree(total, 0), owner_exit(total, -1), transfers(total, 0);
    std::vector<float> margin(total, 0);
    auto exits_of = [&](Member& m, int first, int n, const std::vector<float>& thresholds) {
        m.plan->run_all(x.data() + int64_t(first) * per, n);
        std::vector<const float*> logits(K);
        for (int k = 0; k < K; ++k) logits[k] = m.plan->exit_logits(k).data;
        return std::make_pair(exits_under_policy(logits, n, classes, thresholds), logits);
    };
    for (int first = 0; first < total; first += o.batch) {
        const int n = std::min(o.batch, total - first);
        for (size_t v = 0; v < ensemble.size(); ++v) {
            auto [ex, logits] = exits_of(ensemble[v], first, n, q);
            for (int i = 0; i < n; ++i) {
                agree[first + i] += ex[i] == target[first + i];
                if (v == 0) {
                    owner_exit[first + i] = ex[i];
                    margin[first + i] = achieved_margin(logits, i, classes, target[first + i], q);
                }
            }
        }
        for (auto& r : references) {
            auto [ex, logits] = exits_of(r, first, n, r.model.thresholds);
            for (int i = 0; i < n; ++i) transfers[first + i] += ex[i] == target[first + i];
        }
    }

    FingerprintSet set;
    std::vector<int> chosen;
    for (size_t e = 0; e < exits.size(); ++e) {
        std::vector<int> pool;
        for (int i = int(e) * per_target; i < int(e + 1) * per_target; ++i)
            if (owner_exit[i] == target[i]) pool.push_back(i);
        std::sort(pool.begin(), pool.end(), [&](int a, int b) {
            if (transfers[a] != transfers[b]) return transfers[a] < transfers[b];
            if (agree[a] != agree[b]) return agree[a] > agree[b];
            return margin[a] > margin[b];
        });
        check(!pool.empty(), "fp_gen: no candidate leaves at exit " + std::to_string(exits[e]) +
                                 " (try more --steps, a smaller --margin or another --seed)");
        if (int(pool.size()) < o.per_exit)
            std::fprintf(stderr, "fp_gen: warning: only %zu of %d inputs for exit %d reached it\n", pool.size(), o.per_exit, exits[e]);
        pool.resize(std::min<size_t>(pool.size(), size_t(o.per_exit)));
        chosen.insert(chosen.end(), pool.begin(), pool.end());
    }
    const int M = int(chosen.size());
    set.inputs = Tensor(Shape{M, in_dims[1], in_dims[2], in_dims[3]});
    int ensemble_agree = 0;
    for (int j = 0; j < M; ++j) {
        std::copy_n(x.data() + int64_t(chosen[j]) * per, per, set.inputs.data() + int64_t(j) * per);
        set.target_exits.push_back(target[chosen[j]]);
        set.margins.push_back(margin[chosen[j]]);
        ensemble_agree += agree[chosen[j]];
    }
    set.model_hash = model_hash(model);
    set.model_name = std::filesystem::path(model_path).filename().string();
    set.thresholds = q;
    Plan probe(model, *backend, 1);
    for (auto macs : probe.macs_to_exit()) set.exit_macs.push_back(double(macs));

    // Null hypothesis: exact-exit agreement of independent models on the chosen inputs. With no
    // reference models the conservative default 0.5 stands (chance alone would be 1/K).
    if (!references.empty()) {
        double worst = 0;
        std::string per_ref;
        for (auto& r : references) {
            int hits = 0;
            for (int j = 0; j < M; ++j) {
                auto [ex, logits] = exits_of(r, chosen[j], 1, r.model.thresholds);
                hits += ex[0] == set.target_exits[j];
            }
            double rate = double(hits) / M;
            worst = std::max(worst, rate);
            per_ref += (per_ref.empty() ? "" : ", ") + std::filesystem::path(r.name).filename().string() + "=" + std::to_string(rate);
        }
        // Never below chance, and a little above the worst reference seen: a fresh independent
        // model may transfer somewhat more than the ones at hand.
        set.null_match_rate = std::clamp(std::max(worst + 0.05, 1.0 / K), 0.01, 0.95);
        set.null_source = "reference models (exit oracle): " + per_ref;
    } else {
        set.null_match_rate = 0.5;
        set.null_source = "default 0.5 (no reference models given)";
    }

    // The owner's latency to each exit on this machine, from the fingerprint inputs themselves.
    Dataset probe_data;
    probe_data.images = set.inputs;
    probe_data.labels.assign(M, 0);
    auto single = make_backend(o.backend, 1);
    for (const auto& s : cli::exit_latencies(model, *single, probe_data, o.latency_reps)) set.owner_latency_ms.push_back(s.median_ms);

    set.info["steps"] = std::to_string(o.steps);
    set.info["margin"] = std::to_string(o.margin);
    set.info["eps"] = std::to_string(o.eps);
    set.info["seed"] = std::to_string(o.seed);
    set.info["start"] = o.data_dir.empty() ? "noise" : "data:" + o.data_dir;
    std::string names;
    for (auto& m : ensemble) names += (names.empty() ? "" : ",") + m.name;
    set.info["ensemble"] = names;
    set.info["ensemble_agreement"] = std::to_string(double(ensemble_agree) / (M * double(ensemble.size())));
    return set;
}

}  // namespace fp
