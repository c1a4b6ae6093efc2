// engine_run: inspect, evaluate, run and convert multi-exit models.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli_common.h"
#include "engine/atomic_file.h"
#include "engine/error.h"
#include "engine/plan.h"
#include "engine/safetensors.h"
#include "engine/evaluate.h"
#include "engine/model_zoo.h"
#include "serve.h"

using namespace engine;
using nlohmann::json;

namespace {

int cmd_info(const std::string& path) {
    Model model = load_model(path);
    const Graph& g = model.graph;
    std::map<std::string, int> ops;
    for (const auto& n : g.nodes) ops[op_name(n.op)]++;
    auto macs = exit_macs(g);
    auto in = g.nodes[g.inputs.at(0)].input_dims;
    std::printf("model      %s\n", path.c_str());
    std::printf("input      [");
    for (size_t i = 0; i < in.size(); ++i)
        std::printf(i ? ",%s" : "%s", in[i] < 0 ? "N" : std::to_string(in[i]).c_str());
    std::printf("]\nnodes      %zu (", g.nodes.size());
    bool first = true;
    for (auto& [op, count] : ops) std::printf("%s%s %d", first ? "" : ", ", op.c_str(), count), first = false;
    std::printf(")\nparameters %lld\n", (long long)count_parameters(g));
    std::printf("exits      %d\n", model.num_exits());
    std::printf("  exit  name       threshold  MMACs to reach  %% of full depth\n");
    for (int k = 0; k < model.num_exits(); ++k)
        std::printf("  %4d  %-9s  %9.3f  %14.2f  %14.1f\n", k,
                    g.output_names.empty() ? ("exit" + std::to_string(k)).c_str() : g.output_names[k].c_str(),
                    k == model.num_exits() - 1 ? 0.0f : model.thresholds[k], macs[k] / 1e6,
                    100.0 * macs[k] / macs.back());
    for (auto& [key, value] : model.metadata) std::printf("meta       %s = %s\n", key.c_str(), value.c_str());
    return 0;
}

// One CSV row per sample: where it left under the policy and what it answered there. Two
// backends' files agree on index,label,exit,class when their decisions are identical.
void write_per_sample(const std::string& out, const Dataset& data, const EvalResult& r) {
    write_file_atomically(out, [&](std::ostream& os) {
        os << "index,label,exit,class,confidence\n";
        char line[96];
        for (size_t i = 0; i < r.samples.size(); ++i) {
            const auto& s = r.samples[i];
            std::snprintf(line, sizeof line, "%zu,%d,%d,%d,%.6f\n", i, data.labels[i], s.exit, s.cls, s.prob);
            os << line;
        }
    });
}

int cmd_eval(const std::string& path, const std::string& data_dir, const std::string& thresholds_text, int batch,
             int limit, int latency_samples, const std::string& backend_name, int threads, bool as_json,
             const std::string& per_sample) {
    Model model = load_model(path);
    auto thresholds =
        thresholds_text.empty() ? model.thresholds : cli::parse_thresholds(thresholds_text, model.num_exits());
    Dataset data = load_dataset_dir(data_dir, false, limit);
    check_data_fits(model, data, data_dir);
    auto backend = make_backend(backend_name, threads);
    cli::Progress bar("eval", data.size());
    EvalProgress progress;
    if (!as_json) progress = [&](int64_t done, int64_t) { bar.update(done); };
    auto r = evaluate(model, *backend, data, thresholds, batch, progress);
    if (!as_json) bar.finish();
    std::vector<LatencyStats> latency;
    if (latency_samples > 0) {
        auto single = make_backend(backend_name, 1);
        latency = exit_latencies(model, *single, data, latency_samples);
    }
    if (!per_sample.empty()) write_per_sample(per_sample, data, r);
    if (as_json) {
        json j;
        j["model"] = path;
        j["backend"] = backend->name();
        j["images"] = r.count;
        j["thresholds"] = r.thresholds;
        j["accuracy"] = r.accuracy;
        j["per_exit_accuracy"] = r.per_exit_accuracy;
        j["exit_histogram"] = r.exit_histogram;
        j["avg_macs_fraction"] = r.avg_macs_fraction;
        std::vector<double> med, p99;
        for (auto& l : latency) med.push_back(l.median_ms), p99.push_back(l.p99_ms);
        j["latency_ms_median_per_exit"] = med;
        j["latency_ms_p99_per_exit"] = p99;
        j["wall_s"] = r.wall_s;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("%s on %lld images (backend %s, %.1f s)\n", path.c_str(), (long long)r.count, backend->name().c_str(),
                r.wall_s);
    std::printf("accuracy under the policy: %.2f %%   average MACs: %.1f %% of full depth\n", 100 * r.accuracy,
                100 * r.avg_macs_fraction);
    std::printf("  exit  threshold  accuracy %%  leaving here  median ms  p99 ms\n");
    for (int k = 0; k < model.num_exits(); ++k)
        std::printf("  %4d  %9.3f  %10.2f  %12lld  %9.3f  %6.3f\n", k, r.thresholds[k], 100 * r.per_exit_accuracy[k],
                    (long long)r.exit_histogram[k], latency.empty() ? 0.0 : latency[k].median_ms,
                    latency.empty() ? 0.0 : latency[k].p99_ms);
    return 0;
}

// An input image from a safetensors tensor file (first tensor, [C,H,W] or [1,C,H,W]) or a CIFAR record.
Tensor read_input(const std::string& path, int index, const Model& model) {
    const Shape want = model.input_shape(1);
    Tensor x;
    if (std::filesystem::path(path).extension() == ".bin") {
        Dataset d = load_cifar(path, false, 10, index + 1);
        check(index < d.size(), path + ": has no record " + std::to_string(index));
        const int64_t per = d.images.numel() / d.size();
        x = Tensor(want, std::vector<float>(d.images.data() + index * per, d.images.data() + (index + 1) * per));
    } else {
        auto tensors = read_safetensors(path);
        check(!tensors.empty(), path + ": holds no tensor");
        x = tensors.begin()->second;
        check(x.numel() == want.numel(),
              path + ": tensor of shape " + x.shape().str() + " does not fit the model input " + want.str());
        x.reshape(want);
    }
    for (float v : x.values()) check(std::isfinite(v), path + ": input contains NaN or infinite values");
    return x;
}

int cmd_predict(const std::string& path, const std::string& input, int index, const std::string& thresholds_text,
                const std::string& backend_name, int threads, bool as_json) {
    Model model = load_model(path);
    auto thresholds =
        thresholds_text.empty() ? model.thresholds : cli::parse_thresholds(thresholds_text, model.num_exits());
    Tensor x = read_input(input, index, model);
    auto backend = make_backend(backend_name, threads);
    Plan plan(model, *backend, 1);
    SampleResult r;
    plan.run_early(x.data(), 1, thresholds.data(), &r);  // warm-up
    plan.run_early(x.data(), 1, thresholds.data(), &r);
    if (as_json) {
        json j{{"class", r.cls}, {"probability", r.prob}, {"exit", r.exit}, {"latency_ms", r.ns * 1e-6}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("class %d  probability %.4f  exit %d  latency %.3f ms\n", r.cls, r.prob, r.exit, r.ns * 1e-6);
    }
    return 0;
}

// ONNX or native in, native out; with --arch, a PyTorch SDN state dict (safetensors) loaded into
// that architecture, BatchNorm unfolded.
int cmd_convert(const std::string& in, const std::string& out, const std::string& arch) {
    Model model;
    if (arch.empty()) {
        model = load_model(in);
    } else {
        model = build_model(arch, 10, 32, 0);
        load_pytorch_state(model, in);
        model.metadata["source"] = "pytorch state dict " + std::filesystem::path(in).filename().string();
    }
    save_model(model, out);
    std::printf("wrote %s (%d exits, sha256 %s)\n", out.c_str(), model.num_exits(), model_hash(model).c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::guarded_main("engine_run", [&]() -> int {
        CLI::App app{"engine_run: inspect, evaluate, run, convert and serve multi-exit models"};
        app.require_subcommand(1);
        std::string model, data, thresholds, backend = default_backend_name(), input, out, listen;
        int batch = 100, limit = -1, latency_samples = 200, index = 0, threads = 0, latency_threads = 1;
        bool as_json = false;

        auto* info = app.add_subcommand("info", "graph summary, exits, multiply-adds to each exit, parameters");
        info->add_option("model", model, "native model file or .onnx")->required();

        auto* eval = app.add_subcommand("eval", "accuracy, per-exit accuracy, exit histogram, per-exit latency");
        eval->add_option("model", model)->required();
        eval->add_option("--data", data, "CIFAR-10/100, IDX or Tiny-ImageNet-200 folder")->required();
        eval->add_option("--threshold,--thresholds", thresholds, "q for every exit, or q0,q1,... per exit");
        eval->add_option("--batch", batch, "batch size")->check(CLI::Range(1, 4096));
        eval->add_option("--limit", limit, "evaluate only the first N images");
        eval->add_option("--latency-samples", latency_samples, "batch-1 timings per exit (0: skip)")
            ->check(CLI::NonNegativeNumber);
        eval->add_option("--backend", backend, cli::backend_choices());
        cli::add_kernels_option(*eval);
        eval->add_option("--threads", threads, "threads for the batched pass (0: one per core; latency uses 1)")
            ->check(CLI::Range(0, 256));
        eval->add_flag("--json", as_json, "print one JSON object");
        std::string per_sample;
        eval->add_option("--per-sample", per_sample, "write each sample's exit, class and confidence to this CSV");

        auto* predict = app.add_subcommand("predict", "classify one image with early exit");
        predict->add_option("model", model)->required();
        predict->add_option("--input", input, "safetensors tensor file or CIFAR .bin file")->required();
        predict->add_option("--index", index, "record index in a CIFAR file")->check(CLI::NonNegativeNumber);
        predict->add_option("--threshold,--thresholds", thresholds);
        predict->add_option("--backend", backend, cli::backend_choices());
        cli::add_kernels_option(*predict);
        predict->add_option("--threads", latency_threads, "compute threads (default 1: the steadiest latency)")
            ->check(CLI::Range(1, 256));
        predict->add_flag("--json", as_json);

        auto* convert = app.add_subcommand("convert", "convert an ONNX (or native) model to the native format");
        convert->add_option("input", model)->required();
        convert->add_option("output", out)->required();
        std::string arch;
        convert->add_option("--arch", arch,
                            "read a PyTorch SDN state dict (safetensors) into this architecture (10 classes, 32x32)");

        auto* serve = app.add_subcommand("serve", "answer classification requests on a loopback TCP port");
        serve->add_option("model", model)->required();
        serve->add_option("--listen", listen, "host:port to listen on (loopback only)")->default_val("127.0.0.1:8765");
        serve->add_option("--threshold,--thresholds", thresholds);
        serve->add_option("--backend", backend, cli::backend_choices());
        cli::add_kernels_option(*serve);
        serve->add_option("--threads", latency_threads, "compute threads (default 1: the steadiest latency)")
            ->check(CLI::Range(1, 256));

        CLI11_PARSE(app, argc, argv);
        if (*info) return cmd_info(model);
        if (*eval)
            return cmd_eval(model, data, thresholds, batch, limit, latency_samples, backend, threads, as_json,
                            per_sample);
        if (*predict) return cmd_predict(model, input, index, thresholds, backend, latency_threads, as_json);
        if (*convert) return cmd_convert(model, out, arch);
        if (*serve) return cli::serve_model(model, listen, thresholds, backend, latency_threads);
        return 1;
    });
}
