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

namespace {

struct Candidates {
    Tensor x, start;               // [total, C, H, W]: current pixels and starting pixels
    std::vector<int> target, target_class;
    int64_t per = 0;               // floats per image
    float* row(int i) { return x.data() + int64_t(i) * per; }
};

std::vector<Member> build_ensemble(const Model& model, const CraftOptions& o, Backend& backend) {
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
    for (auto& m : ensemble) {  // plans last: they hold references to the models, which stay put now
        check(m.model.num_exits() == model.num_exits(), m.name + ": has " + std::to_string(m.model.num_exits()) +
                                                            " exits, the model " + std::to_string(model.num_exits()));
        m.plan = std::make_unique<Plan>(m.model, backend, o.batch, /*keep_all=*/true);
    }
    return ensemble;
}

// per_target candidates for each target exit, from real test images or uniform noise.
Candidates starting_points(const Model& model, const std::vector<int>& exits, int per_target, const CraftOptions& o) {
    auto dims = model.graph.nodes[model.graph.inputs.at(0)].input_dims;
    const int total = per_target * int(exits.size());
    dims[0] = total;
    Candidates c;
    c.x = Tensor(Shape(dims));
    c.per = c.x.numel() / total;
    std::mt19937_64 rng(o.seed);
    if (!o.data_dir.empty()) {
        Dataset d = cli::load_dataset_dir(o.data_dir, false);
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

// Adam on the pixels of every candidate, in batches of the candidates still unsatisfied: a
// candidate leaves the batch once every ensemble member puts it at its target with the margin
// (its loss is zero) or after o.steps steps, and the next waiting candidate takes its place.
void optimise(Candidates& c, std::vector<Member>& ensemble, const std::vector<float>& q, int classes,
              const CraftOptions& o) {
    const int total = int(c.target.size()), K = int(q.size());
    const int64_t per = c.per;
    Plan& owner = *ensemble[0].plan;
    for (int first = 0; first < total; first += o.batch) {  // the class exit t already leans towards
        const int n = std::min(o.batch, total - first);
        owner.run_all(c.row(first), n);
        for (int i = 0; i < n; ++i)
            c.target_class[first + i] = top_class(owner.exit_logits(c.target[first + i]).data + int64_t(i) * classes, classes).cls;
    }
    std::vector<float> m1(c.x.numel(), 0.0f), m2(c.x.numel(), 0.0f), xb(size_t(o.batch) * per), gx(size_t(o.batch) * per);
    std::vector<int> steps(total, 0), batch;
    std::vector<double> loss(o.batch);
    std::vector<std::vector<float>> grads(K);
    std::vector<const float*> logits(K), seeds(K);
    int next = 0;
    int64_t work_done = 0;
    cli::Progress bar("crafting", int64_t(total) * o.steps, "step");
    while (true) {
        while (int(batch.size()) < o.batch && next < total) batch.push_back(next++);
        if (batch.empty() || o.steps == 0) break;
        const int n = int(batch.size());
        for (int i = 0; i < n; ++i) std::copy_n(c.row(batch[i]), per, xb.data() + int64_t(i) * per);
        std::fill(gx.begin(), gx.begin() + int64_t(n) * per, 0.0f);
        std::fill(loss.begin(), loss.end(), 0.0);
        for (auto& member : ensemble) {
            Plan& plan = *member.plan;
            plan.run_all(xb.data(), n);
            for (int k = 0; k < K; ++k) {
                logits[k] = plan.exit_logits(k).data;
                grads[k].assign(size_t(n) * classes, 0.0f);
                seeds[k] = grads[k].data();
            }
            for (int i = 0; i < n; ++i)
                loss[i] += exit_loss(logits, i, classes, c.target[batch[i]], c.target_class[batch[i]], q, o.margin, grads);
            plan.backward(seeds.data(), /*need_input_grad=*/true, false, 0, /*need_param_grads=*/false);
            TensorView g = plan.input_grad();
            for (int64_t e = 0; e < g.numel(); ++e) gx[e] += g[e];
        }
        std::vector<int> still;
        for (int i = 0; i < n; ++i) {
            const int id = batch[i];
            if (loss[i] == 0) {  // satisfied on every member: done
                work_done += o.steps - steps[id];
                continue;
            }
            const int t = ++steps[id];
            const float b1 = 0.9f, b2 = 0.999f, c1 = 1 - std::pow(b1, float(t)), c2 = 1 - std::pow(b2, float(t));
            float* px = c.row(id);
            const float* ps = c.start.data() + int64_t(id) * per;
            float *a = m1.data() + int64_t(id) * per, *b = m2.data() + int64_t(id) * per;
            const float* g = gx.data() + int64_t(i) * per;
            for (int64_t e = 0; e < per; ++e) {
                a[e] = b1 * a[e] + (1 - b1) * g[e];
                b[e] = b2 * b[e] + (1 - b2) * g[e] * g[e];
                float v = px[e] - o.lr * (a[e] / c1) / (std::sqrt(b[e] / c2) + 1e-8f);
                if (o.eps >= 0) v = std::clamp(v, ps[e] - o.eps, ps[e] + o.eps);
                px[e] = std::clamp(v, 0.0f, 1.0f);
            }
            ++work_done;
            if (t < o.steps) still.push_back(id);
        }
        batch = still;
        if (o.progress) bar.update(work_done);
    }
    if (o.progress) bar.finish();
}

struct Scores {
    std::vector<int> owner_exit, agree, transfers;  // agree: ensemble members; transfers: references
    std::vector<float> margin;
    std::vector<std::vector<char>> transfer_by_ref;  // [reference][candidate]: left at the target there
};

Scores score(Candidates& c, std::vector<Member>& ensemble, std::vector<Member>& references,
             const std::vector<float>& q, int classes, int batch) {
    const int total = int(c.target.size());
    Scores s{std::vector<int>(total, -1), std::vector<int>(total, 0), std::vector<int>(total, 0),
             std::vector<float>(total, 0), std::vector<std::vector<char>>(references.size(), std::vector<char>(total, 0))};
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
            auto ex = exits_under_policy(logits, n, classes, q);
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
                s.transfers[first + i] += s.transfer_by_ref[r][first + i];
            }
        }
    }
    return s;
}

// Per target exit, the best per_exit candidates that leave the owner exactly there: fewest
// reference transfers, then most ensemble agreement, then largest margin.
std::vector<int> select(const Candidates& c, const Scores& s, const std::vector<int>& exits, int per_target, int per_exit) {
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
            std::fprintf(stderr, "warning: only %zu of %d inputs for exit %d reached it\n", pool.size(), per_exit, exits[e]);
        pool.resize(std::min<size_t>(pool.size(), size_t(per_exit)));
        chosen.insert(chosen.end(), pool.begin(), pool.end());
    }
    return chosen;
}

}  // namespace

FingerprintSet craft_fingerprint(const Model& model, const std::string& model_path, const CraftOptions& o) {
    const int K = model.num_exits();
    std::vector<int> exits = o.exits;
    if (exits.empty()) {
        exits.resize(K);
        std::iota(exits.begin(), exits.end(), 0);
    }
    for (int t : exits) check(t >= 0 && t < K, "exit " + std::to_string(t) + " out of range (model has " + std::to_string(K) + ")");
    check(o.per_exit >= 1 && o.steps >= 0 && o.batch >= 1, "--per-exit, --steps and --batch must be positive");
    const auto& q = model.thresholds;
    const int classes = int(model.graph.infer_shapes(1)[model.graph.outputs[0]].numel());
    auto backend = make_backend(o.backend, o.threads);

    std::vector<Member> ensemble = build_ensemble(model, o, *backend);
    const int per_target = int(std::ceil(o.per_exit * o.oversample));
    Candidates c = starting_points(model, exits, per_target, o);
    optimise(c, ensemble, q, classes, o);

    std::vector<Member> references;
    for (const auto& path : o.reference_paths) {
        references.push_back({path, load_model(path), nullptr});
        check(references.back().model.num_exits() >= 2, path + ": a reference model needs at least two exits");
    }
    for (auto& r : references) r.plan = std::make_unique<Plan>(r.model, *backend, o.batch);
    const Scores s = score(c, ensemble, references, q, classes, o.batch);
    const std::vector<int> chosen = select(c, s, exits, per_target, o.per_exit);

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
    Plan probe(model, *backend, 1);
    for (auto macs : probe.macs_to_exit()) set.exit_macs.push_back(double(macs));

    // The null hypothesis: how often an independent model leaves at the target. Measured on the
    // reference models over every candidate that reached its target on the owner, before the
    // selection preferred those that do not transfer (after it, the estimate would be biased
    // low), plus a margin, and never below chance. With no reference models: 0.5.
    if (!references.empty()) {
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
        set.null_match_rate = std::clamp(std::max(worst + 0.05, 1.0 / K), 0.01, 0.95);
        set.null_source = "reference models (exit oracle, before selection): " + per_ref;
    } else {
        set.null_match_rate = 0.5;
        set.null_source = "default 0.5 (no reference models given)";
    }

    // The owner's latency to each exit on this machine, from the fingerprint inputs themselves.
    Dataset probe_data;
    probe_data.images = set.inputs;
    probe_data.labels.assign(M, 0);
    auto single = make_backend(o.backend, 1);
    for (const auto& st : cli::exit_latencies(model, *single, probe_data, o.latency_reps))
        set.owner_latency_ms.push_back(st.median_ms);

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
