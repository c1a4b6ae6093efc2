#include <chrono>

#include "engine/error.h"
#include "engine/plan.h"
#include "fingerprint/suspect.h"

namespace fp {

namespace {

class LocalSuspect : public Suspect {
public:
    LocalSuspect(const std::string& path, const std::vector<float>& thresholds, const std::string& backend, int threads)
        : path_(path),
          model_(engine::load_model(path)),
          backend_(engine::make_backend(backend, threads)),
          plan_(model_, *backend_, 1) {
        thresholds_ = model_.thresholds;
        if (thresholds.size() == 1)
            thresholds_.assign(model_.num_exits(), thresholds[0]);
        else if (!thresholds.empty()) {
            engine::check(int(thresholds.size()) == model_.num_exits(), path + ": wrong number of thresholds");
            thresholds_ = thresholds;
        }
    }

    Answer query(const float* image, int copies) override {
        engine::SampleResult r;
        const auto start = std::chrono::steady_clock::now();
        for (int c = 0; c < copies; ++c) plan_.run_early(image, 1, thresholds_.data(), &r);
        const auto end = std::chrono::steady_clock::now();
        return {r.cls, r.exit, std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()};
    }

    int64_t null_query_ns(int) override { return 0; }
    bool reveals_exit() const override { return true; }
    std::string describe() const override { return path_ + " (in-process)"; }
    std::vector<int64_t> input_shape() const override { return model_.input_shape(1).vec(); }

private:
    std::string path_;
    engine::Model model_;
    std::unique_ptr<engine::Backend> backend_;
    engine::Plan plan_;
    std::vector<float> thresholds_;
};

}  // namespace

std::unique_ptr<Suspect> make_local_suspect(const std::string& model_path, const std::vector<float>& thresholds,
                                            const std::string& backend, int threads) {
    return std::make_unique<LocalSuspect>(model_path, thresholds, backend, threads);
}

}  // namespace fp
