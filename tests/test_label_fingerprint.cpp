// Label fingerprints, the prediction-based baselines (craft_label.h): the file, each kind crafted on
// weights/small_s1 and checked against counts made directly from the models' own answers, the
// label oracle's verdict, and the refusal of a wrong oracle (library and fp_check).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "../fingerprint/src/craft_parts.h"  // the crafting losses, private to the library
#include "engine/dataset.h"
#include "engine/error.h"
#include "engine/plan.h"
#include "engine/safetensors.h"
#include "fingerprint/craft_label.h"
#include "fingerprint/stats.h"
#include "fingerprint/verify.h"
#include "test_util.h"

using namespace fp;
namespace fs = std::filesystem;

namespace {

const std::string kWeights = std::string(ENGINE_SOURCE_DIR) + "/weights/";

// A model's answers as a served copy gives them: run_early at batch 1 under its own policy (crafting
// decides with run_all and exits_under_policy, check_labels through a Suspect).
std::vector<int> answers_of(const std::string& path, const engine::Tensor& inputs) {
    const engine::Model m = engine::load_model(path);
    auto backend = engine::make_backend("native", 1);
    engine::Plan plan(m, *backend, 1);
    const int64_t n = inputs.shape()[0], per = inputs.numel() / n;
    std::vector<int> out;
    for (int64_t i = 0; i < n; ++i) {
        engine::SampleResult r;
        plan.run_early(inputs.data() + i * per, 1, m.thresholds.data(), &r);
        out.push_back(r.cls);
    }
    return out;
}

int agreement(const std::vector<int>& answers, const std::vector<int>& labels) {
    int n = 0;
    for (size_t i = 0; i < labels.size(); ++i) n += answers[i] == labels[i];
    return n;
}

FingerprintSet label_set(const std::vector<int>& labels, int classes, double null_rate) {
    FingerprintSet s;
    s.kind = kLabelKind;
    const int M = int(labels.size());
    s.inputs = engine::Tensor(engine::Shape{M, 1, 1, 1});
    for (int i = 0; i < M; ++i) s.inputs[i] = float(i) / M;
    s.target_labels = labels;
    s.target_exits.assign(M, 1);
    s.margins.assign(M, 0.1f);
    s.num_classes = classes;
    s.model_hash = "abc";
    s.model_name = "m";
    s.thresholds = {0.9f, 0.9f};
    s.exit_macs = {10, 20};
    s.null_match_rate = null_rate;
    s.null_source = "test";
    return s;
}

// Answers the expected label on the first `right` inputs (read from the pixel: input i holds i / M),
// the next class on the others; or `constant` for everything when it is >= 0.
class ScriptedSuspect : public Suspect {
public:
    ScriptedSuspect(const FingerprintSet& set, int right, int constant = -1)
        : set_(set), right_(right), constant_(constant) {}
    Answer query(const float* image, int) override {
        const int i = int(image[0] * set_.size() + 0.5f);
        if (constant_ >= 0) return {constant_, -1, 1000};
        const int c = set_.target_labels[i];
        return {i < right_ ? c : (c + 1) % set_.num_classes, -1, 1000};
    }
    int64_t null_query_ns(int) override { return 0; }
    bool reveals_exit() const override { return false; }
    std::string describe() const override { return "scripted suspect"; }
    std::vector<int64_t> input_shape() const override { return {1, 1, 1, 1}; }

private:
    const FingerprintSet& set_;
    int right_, constant_;
};

// Rewrites a saved fingerprint's metadata, to make files a writer of this version never makes.
void edit_metadata(const std::string& path, const std::function<void(std::map<std::string, std::string>&)>& edit) {
    std::map<std::string, std::string> meta;
    auto tensors = engine::read_safetensors(path, &meta);
    edit(meta);
    engine::write_safetensors(path, {{"inputs", &tensors.at("inputs")}}, meta);
}

std::string load_error(const std::string& path) {
    try {
        load_fingerprint(path);
    } catch (const engine::Error& e) {
        return e.what();
    }
    return "";
}

std::string run_command(const std::string& command, int* status) {
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe);
    char buf[512];
    while (fgets(buf, sizeof buf, pipe)) out += buf;
    const int rc = pclose(pipe);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return out;
}

}  // namespace

TEST_CASE("label fingerprint files: round trip, timing files without a kind, one-line errors naming the file") {
    const std::string path = fs::temp_directory_path() / "fp_label_roundtrip.fp";
    const FingerprintSet s = label_set({3, 1, 4, 1, 5}, 10, 0.2);
    save_fingerprint(s, path);
    const FingerprintSet r = load_fingerprint(path);
    CHECK(r.is_label());
    CHECK(r.target_labels == s.target_labels);
    CHECK(r.num_classes == 10);
    CHECK(r.owner_latency_ms.empty());
    CHECK(r.inputs.values() == s.inputs.values());
    CHECK(r.info.count("kind") == 0);  // a field, not left in info

    // A timing file from before the kind existed loads as a timing one.
    FingerprintSet timing = label_set({0, 1}, 10, 0.3);
    timing.kind = kTimingKind;
    timing.owner_latency_ms = {1.0, 2.0};
    save_fingerprint(timing, path);
    CHECK(engine::read_safetensors_metadata(path).at("version") == "1");
    edit_metadata(path, [](auto& m) { m.erase("kind"); });
    CHECK(load_fingerprint(path).kind == kTimingKind);
    CHECK(load_fingerprint(path).target_labels.empty());

    const std::vector<std::pair<std::string, std::function<void(std::map<std::string, std::string>&)>>> broken{
        {"unknown kind", [](auto& m) { m["kind"] = "bogus"; }},
        {"no target labels", [](auto& m) { m.erase("target_labels"); }},
        {"no class count", [](auto& m) { m.erase("num_classes"); }},
        {"label out of range", [](auto& m) { m["target_labels"] = "[3,1,4,1,10]"; }},
        {"negative label", [](auto& m) { m["target_labels"] = "[3,1,-1,1,5]"; }},
        {"too few labels", [](auto& m) { m["target_labels"] = "[3,1,4]"; }},
        {"labels not a list", [](auto& m) { m["target_labels"] = "\"x\""; }},
        {"one class", [](auto& m) { m["num_classes"] = std::to_string(1); }},
        {"no latency and a timing kind", [](auto& m) { m["kind"] = "timing"; }},
    };
    for (const auto& [what, edit] : broken) {
        CAPTURE(what);
        save_fingerprint(s, path);
        edit_metadata(path, edit);
        const std::string error = load_error(path);
        CHECK(error.find(path) != std::string::npos);
        CHECK(error.find('\n') == std::string::npos);
    }
    fs::remove(path);
}

TEST_CASE("the label oracle counts the expected answers and decides with decide_verdict") {
    // 30 inputs over 10 classes, class 7 six times: a suspect answering 7 for everything matches
    // 6 / 30, which the null must cover.
    std::vector<int> labels;
    for (int i = 0; i < 24; ++i) labels.push_back(i % 8 == 7 ? 8 : i % 8);
    for (int i = 0; i < 6; ++i) labels.push_back(7);
    const FingerprintSet set = label_set(labels, 10, 0.1);
    const int M = set.size();
    CheckOptions o;
    for (int right : {0, 5, 12, 20, M}) {
        CAPTURE(right);
        ScriptedSuspect suspect(set, right);
        const CheckResult r = check_labels(set, suspect, o);
        CHECK(r.matches == right);
        CHECK(r.queries == M);
        CHECK(r.oracle == "label");
        CHECK(r.null_match_rate == doctest::Approx(0.2));  // raised to the share of class 7
        CHECK(r.p_value == doctest::Approx(binomial_upper_tail(right, M, 0.2)));
        CHECK(r.p_value_pirate == doctest::Approx(binomial_lower_tail(right, M, 0.2 + kPirateLift)));
        const Verdict expected = r.p_value < o.alpha         ? Verdict::match
                                 : r.p_value_pirate < o.beta ? Verdict::no_match
                                                             : Verdict::inconclusive;
        CHECK(r.verdict == expected);
    }
    ScriptedSuspect all(set, M), none(set, 0), constant(set, 0, 7);
    CHECK(check_labels(set, all, o).verdict == Verdict::match);
    CHECK(check_labels(set, none, o).verdict == Verdict::no_match);
    const CheckResult c = check_labels(set, constant, o);
    CHECK(c.matches == 6);
    CHECK(c.verdict != Verdict::match);
}

TEST_CASE("a wrong oracle is refused in one line naming the fingerprint") {
    const FingerprintSet label = label_set({1, 2, 3}, 10, 0.2);
    FingerprintSet timing = label_set({1, 2, 3}, 10, 0.2);
    timing.kind = kTimingKind;
    timing.target_labels.clear();
    timing.owner_latency_ms = {1.0, 2.0};
    ScriptedSuspect suspect(label, 3);
    CheckOptions o;
    CHECK_THROWS_AS(check_suspect(label, suspect, o), engine::Error);
    o.time_oracle = false;
    CHECK_THROWS_AS(check_suspect(label, suspect, o), engine::Error);
    CHECK_THROWS_AS(check_labels(timing, suspect, o), engine::Error);

    const std::string fp_check = std::string(ENGINE_BIN_DIR) + "/fp_check";
    REQUIRE_MESSAGE(fs::exists(fp_check), fp_check << " not built");
    const std::string label_path = fs::temp_directory_path() / "fp_oracle_label.fp",
                      timing_path = fs::temp_directory_path() / "fp_oracle_timing.fp";
    save_fingerprint(label, label_path);
    save_fingerprint(timing, timing_path);
    const std::string suspect_model = kWeights + "small_s1.model";
    for (const auto& [path, oracle] : std::vector<std::pair<std::string, std::string>>{
             {label_path, "time"}, {label_path, "exit"}, {timing_path, "label"}}) {
        CAPTURE(oracle);
        int status = 0;
        const std::string out = run_command(
            fp_check + " " + path + " --suspect " + suspect_model + " --oracle " + oracle + " 2>&1", &status);
        CHECK(status == 2);
        CHECK(out.find(path) != std::string::npos);
        CHECK(out.find('\n') == out.size() - 1);  // one line
    }
    fs::remove(label_path);
    fs::remove(timing_path);
}

// Each kind on weights/small_s1 (small_s3 steers, small_s2 is held out for the null), through the
// file: the owner answers every expected label; the held-out reference's count, recomputed from its
// own answers, is what the label oracle counts and what the file's null was made from.
TEST_CASE("label fingerprints of weights/small_s1: the owner matches, counts are the models' own answers") {
    const std::string owner_path = kWeights + "small_s1.model", held = kWeights + "small_s2.model";
    const engine::Model owner = engine::load_model(owner_path);
    const std::string data = test::shared_dir() + "/data/cifar10";
    const bool have_data = test::have_material(fs::exists(data + "/test_batch.bin") || fs::exists(data),
                                               "misclassified label fingerprint", data + " not found");
    for (LabelKind kind : {LabelKind::misclassified, LabelKind::ipguard, LabelKind::cae}) {
        if (kind == LabelKind::misclassified && !have_data) continue;
        const std::string name = label_kind_name(kind);
        CAPTURE(name);
        CraftOptions o;
        o.data_dir = kind == LabelKind::misclassified ? data : "";  // the others from noise: no data needed
        o.steps = 60;
        o.lr = 0.02f;
        o.oversample = 1.5;
        o.prune_variants = {0.3};
        o.reference_paths = {kWeights + "small_s3.model", held};
        o.threads = 1;
        LabelOptions lo;
        lo.inputs = 16;
        const FingerprintSet crafted = craft_label_fingerprint(owner, owner_path, kind, o, lo);
        const std::string path = fs::temp_directory_path() / "fp_label_small.fp";
        save_fingerprint(crafted, path);
        const FingerprintSet set = load_fingerprint(path);
        fs::remove(path);
        REQUIRE(set.is_label());
        REQUIRE(set.size() == lo.inputs);
        CHECK(set.target_labels == crafted.target_labels);
        CHECK(set.info.at("label_kind") == label_kind_name(kind));

        const std::vector<int> owner_answers = answers_of(owner_path, set.inputs);
        CHECK(agreement(owner_answers, set.target_labels) == set.size());
        if (kind == LabelKind::misclassified) {  // the test images they claim to be, which the owner gets wrong
            const auto truth = nlohmann::json::parse(set.info.at("true_labels")).get<std::vector<int>>();
            const auto index = nlohmann::json::parse(set.info.at("test_indices")).get<std::vector<int>>();
            const engine::Dataset test_set = engine::load_dataset_dir(data, false);
            const int64_t per = set.inputs.numel() / set.size();
            for (int i = 0; i < set.size(); ++i) {
                CHECK(test_set.labels[index[i]] == truth[i]);
                CHECK(owner_answers[i] != truth[i]);
                CHECK(std::equal(set.inputs.data() + i * per, set.inputs.data() + (i + 1) * per,
                                 test_set.images.data() + int64_t(index[i]) * per));
            }
        }

        CheckOptions c;
        auto on_owner = make_local_suspect(owner_path, {}, "native");
        const CheckResult mine = check_labels(set, *on_owner, c);
        CHECK(mine.matches == set.size());
        CHECK(mine.p_value == doctest::Approx(binomial_upper_tail(set.size(), set.size(), mine.null_match_rate)));
        CHECK(mine.verdict == (mine.p_value < c.alpha ? Verdict::match : Verdict::inconclusive));

        auto on_held = make_local_suspect(held, {}, "native");
        const CheckResult theirs = check_labels(set, *on_held, c);
        const int held_count = agreement(answers_of(held, set.inputs), set.target_labels);
        CHECK(theirs.matches == held_count);
        const auto refs = nlohmann::json::parse(set.info.at("null_references"));
        REQUIRE(refs.size() == 2);
        CHECK(refs[1]["role"] == "held out: null");
        CHECK(double(refs[1]["rate_selected"]) == doctest::Approx(double(held_count) / set.size()));
        CHECK(set.null_match_rate >= double(held_count) / set.size() + kNullMargin - 1e-9);
        MESSAGE(name << ": null " << set.null_match_rate << ", owner p " << mine.p_value << ", held-out small_s2 "
                     << held_count << "/" << set.size());
    }
}

// The crafting losses against finite differences of themselves: each returns a loss and adds its
// gradient with respect to the logits, which Adam on the pixels follows through backward().
TEST_CASE("the ipguard and cae losses' gradients are their finite differences") {
    const int K = 3, classes = 10, i = 2, j = 5, target = 4;
    const std::vector<float> q{0.3f, 0.3f, 0.9f};
    std::vector<std::vector<float>> z(K);
    for (int k = 0; k < K; ++k) z[k] = test::random_tensor(engine::Shape{classes}, 40 + k, -2, 2).values();
    z[K - 1][i] = 1.0f, z[K - 1][j] = 0.9f;  // every hinge of the ipguard loss active: j behind i
    using Loss = std::function<double(const std::vector<const float*>&, std::vector<std::vector<float>>&)>;
    const std::vector<std::pair<std::string, Loss>> losses{
        {"ipguard", [&](auto& l, auto& g) { return ipguard_loss(l, 0, classes, i, j, 1.0f, q, 0.05f, g); }},
        {"cae member", [&](auto& l, auto& g) { return cae_member_loss(l, 0, classes, target, 0.95f, q, 0.05f, g); }},
        {"cae reference", [&](auto& l, auto& g) { return cae_reference_loss(l, 0, classes, target, 0.01f, g); }},
    };
    auto evaluate = [&](const Loss& loss, std::vector<std::vector<float>>& grads) {
        std::vector<const float*> logits;
        for (auto& row : z) logits.push_back(row.data());
        grads.assign(K, std::vector<float>(classes, 0.0f));
        return loss(logits, grads);
    };
    for (const auto& [name, loss] : losses) {
        CAPTURE(name);
        std::vector<std::vector<float>> grads, unused;
        CHECK(evaluate(loss, grads) > 0);
        const float h = 1e-2f;
        for (int k = 0; k < K; ++k)
            for (int c = 0; c < classes; ++c) {
                const float keep = z[k][c];
                z[k][c] = keep + h;
                const double up = evaluate(loss, unused);
                z[k][c] = keep - h;
                const double down = evaluate(loss, unused);
                z[k][c] = keep;
                CHECK(grads[k][c] == doctest::Approx((up - down) / (2 * h)).epsilon(0.02).scale(1e-3));
            }
    }
}
