#include <algorithm>
#include <cmath>

#include "craft_parts.h"
#include "engine/exit_policy.h"

namespace fp {

using namespace engine;

// Adam on the pixels of every candidate, in batches of the candidates still unsatisfied: a
// candidate leaves the batch once its loss is zero on every member (each member's loss is a hinge
// that is zero when satisfied) or after o.steps steps, and the next waiting candidate takes its place.
void adam_on_pixels(Candidates& c, const std::vector<Member*>& members, int classes, const SampleLoss& sample_loss,
                    const CraftOptions& o) {
    const int total = int(c.target.size());
    const int64_t per = c.per;
    std::vector<float> m1(c.x.numel(), 0.0f), m2(c.x.numel(), 0.0f), xb(size_t(o.batch) * per),
        gx(size_t(o.batch) * per);
    std::vector<int> steps(total, 0), batch;
    std::vector<double> loss(o.batch);
    std::vector<std::vector<float>> grads;
    std::vector<const float*> logits, seeds;
    int next = 0;
    int64_t work_done = 0;
    const int64_t all_work = int64_t(total) * o.steps;
    while (true) {
        while (int(batch.size()) < o.batch && next < total) batch.push_back(next++);
        if (batch.empty() || o.steps == 0) break;
        const int n = int(batch.size());
        for (int i = 0; i < n; ++i) std::copy_n(c.row(batch[i]), per, xb.data() + int64_t(i) * per);
        std::fill(gx.begin(), gx.begin() + int64_t(n) * per, 0.0f);
        std::fill(loss.begin(), loss.end(), 0.0);
        for (size_t v = 0; v < members.size(); ++v) {
            Plan& plan = *members[v]->plan;
            const int K = members[v]->model.num_exits();  // a reference may have another number of exits
            logits.resize(K), seeds.resize(K), grads.resize(K);
            plan.run_all(xb.data(), n);
            for (int k = 0; k < K; ++k) {
                logits[k] = plan.exit_logits(k).data;
                grads[k].assign(size_t(n) * classes, 0.0f);
                seeds[k] = grads[k].data();
            }
            for (int i = 0; i < n; ++i) loss[i] += sample_loss(v, logits, i, batch[i], grads);
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
        if (o.progress) o.progress(work_done, all_work);
    }
    if (o.progress && work_done < all_work) o.progress(all_work, all_work);  // else the loop's last call said so
}

// The timing loss: each candidate's target exit on every ensemble member under that member's own
// exit policy (a copy whose thresholds were re-set to win back its speed decides by them), for the
// class that exit already leans towards on the owner.
void optimise(Candidates& c, std::vector<Member>& ensemble, int classes, const CraftOptions& o) {
    const int total = int(c.target.size());
    Plan& owner = *ensemble[0].plan;
    for (int first = 0; first < total; first += o.batch) {
        const int n = std::min(o.batch, total - first);
        owner.run_all(c.row(first), n);
        for (int i = 0; i < n; ++i)
            c.target_class[first + i] =
                top_class(owner.exit_logits(c.target[first + i]).data + int64_t(i) * classes, classes).cls;
    }
    std::vector<Member*> members;
    for (auto& m : ensemble) members.push_back(&m);
    adam_on_pixels(
        c, members, classes,
        [&](size_t m, const std::vector<const float*>& logits, int row, int id,
            std::vector<std::vector<float>>& grads) {
            return exit_loss(logits, row, classes, c.target[id], c.target_class[id], members[m]->model.thresholds,
                             o.margin, grads);
        },
        o);
}

}  // namespace fp
