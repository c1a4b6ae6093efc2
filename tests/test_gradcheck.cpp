// Analytic gradients of every op against central finite differences. The loss is
// L = sum(r * output) accumulated in double, so finite differences resolve ~1e-4 relative
// error; the 2e-2 tolerance still catches a flipped sign, a missing term or a wrong stride.
#include <doctest/doctest.h>

#include "engine/model_zoo.h"
#include "op_cases.h"

using namespace engine;

namespace {

constexpr double kStep = 1e-3;
constexpr double kTolerance = 2e-2;

double loss(Plan& plan, const float* x, int n, const Tensor& r, bool training) {
    plan.run_all(x, n, training, 7);
    TensorView y = plan.exit_logits(0);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += double(r[i]) * y[i];
    return s;
}

// Finite differences of the loss with respect to every element of `values`.
std::vector<float> numeric_grad(Plan& plan, Tensor& x, float* values, int64_t count, const Tensor& r, bool training) {
    std::vector<float> g(count);
    const int n = int(x.shape()[0]);
    for (int64_t i = 0; i < count; ++i) {
        const float keep = values[i];
        values[i] = float(keep + kStep);
        double up = loss(plan, x.data(), n, r, training);
        values[i] = float(keep - kStep);
        double down = loss(plan, x.data(), n, r, training);
        values[i] = keep;
        g[i] = float((up - down) / (2 * kStep));
    }
    return g;
}

double check_case(const test::OpCase& c, Backend& backend, bool flip_sign = false) {
    Model m = test::one_node_model(c, 5);
    Tensor x = test::case_input(c, 5);
    const int n = int(c.shapes[0][0]);
    Tensor r = test::random_tensor(m.graph.infer_shapes(n).back(), 123);
    Plan plan(m, backend, n, true);
    loss(plan, x.data(), n, r, c.training);
    const float* seeds[] = {r.data()};
    plan.backward(seeds, true, c.training, 7);
    std::vector<std::vector<float>> analytic;
    TensorView gx = plan.input_grad();
    analytic.emplace_back(gx.data, gx.data + gx.numel());
    for (size_t i = 1; i < c.shapes.size(); ++i) {
        TensorView gp = plan.param_grad(int(i));
        analytic.emplace_back(gp.data, gp.data + gp.numel());
    }
    double worst = 0;
    for (size_t k = 0; k < analytic.size(); ++k) {
        float* values = k == 0 ? x.data() : m.graph.nodes[k].value.data();
        // BatchNorm's running mean and variance (inputs 3, 4) have no gradient in either mode.
        if (c.op == Op::BatchNorm && k >= 3) continue;
        auto numeric = numeric_grad(plan, x, values, int64_t(analytic[k].size()), r, c.training);
        if (flip_sign)
            for (auto& v : analytic[k]) v = -v;
        double err = relative_error(analytic[k].data(), numeric.data(), int64_t(numeric.size()));
        INFO("input " << k << " error " << err);
        worst = std::max(worst, err);
    }
    return worst;
}

}  // namespace

TEST_CASE("every op's gradient matches finite differences on every backend") {
    for (const std::string& name : test::backends()) {
        auto backend = make_backend(name);
        for (const auto& c : test::all_op_cases()) {
            CAPTURE(name);
            CAPTURE(c.label);
            CHECK(check_case(c, *backend) <= kTolerance);
        }
    }
}

TEST_CASE("the gradient check detects a wrong gradient") {
    auto backend = make_backend("ref");
    for (const auto& c : test::all_op_cases()) {
        CAPTURE(c.label);
        CHECK(check_case(c, *backend, /*flip_sign=*/true) > 1.0);
    }
}

TEST_CASE("a whole multi-exit network's gradients match finite differences") {
    Model model = build_model("tiny", 10, 8, 3);
    const int n = 3;
    Tensor x = test::random_tensor(Shape{n, 3, 8, 8}, 21, 0, 1);
    auto backend = make_backend("native");
    for (bool training : {false, true}) {
        CAPTURE(training);
        Plan plan(model, *backend, n, true);
        std::vector<Tensor> r;
        std::vector<const float*> seeds;
        plan.run_all(x.data(), n, training, 1);
        for (int k = 0; k < model.num_exits(); ++k) {
            r.push_back(test::random_tensor(plan.exit_logits(k).shape, 40 + k));
            seeds.push_back(r.back().data());
        }
        // BatchNorm in training mode moves its running statistics on every forward; they do not
        // affect the loss in that mode, and in inference mode the forward does not touch them.
        auto total_loss = [&]() {
            plan.run_all(x.data(), n, training, 1);
            double s = 0;
            for (int k = 0; k < model.num_exits(); ++k) {
                TensorView y = plan.exit_logits(k);
                for (int64_t i = 0; i < y.numel(); ++i) s += double(r[k][i]) * y[i];
            }
            return s;
        };
        // A backward from other seeds first: the plan's gradients must be rewritten, not added to or kept.
        std::vector<Tensor> other;
        std::vector<const float*> other_seeds;
        for (int k = 0; k < model.num_exits(); ++k) {
            other.push_back(test::random_tensor(plan.exit_logits(k).shape, 60 + k));
            other_seeds.push_back(other.back().data());
        }
        plan.backward(other_seeds.data(), true, training, 1);
        total_loss();
        plan.backward(seeds.data(), true, training, 1);
        // Check a few elements of the input and of every parameter.
        std::vector<std::pair<float*, float>> probes;  // element, analytic gradient
        TensorView gx = plan.input_grad();
        for (int64_t i = 0; i < gx.numel(); i += 37) probes.push_back({x.data() + i, gx[i]});
        for (size_t i = 0; i < model.graph.nodes.size(); ++i) {
            Node& node = model.graph.nodes[i];
            if (node.op != Op::Constant || !node.trainable) continue;
            TensorView gp = plan.param_grad(int(i));
            for (int64_t e = 0; e < gp.numel(); e += std::max<int64_t>(1, gp.numel() / 5))
                probes.push_back({node.value.data() + e, gp[e]});
        }
        std::vector<float> analytic, numeric;
        for (auto& [ptr, grad] : probes) {
            const float keep = *ptr;
            *ptr = float(keep + kStep);
            const double up = total_loss();
            *ptr = float(keep - kStep);
            const double down = total_loss();
            *ptr = keep;
            analytic.push_back(grad);
            numeric.push_back(float((up - down) / (2 * kStep)));
        }
        CHECK(probes.size() > 40);
        CHECK(relative_error(analytic.data(), numeric.data(), int64_t(analytic.size())) <= kTolerance);
    }
}
