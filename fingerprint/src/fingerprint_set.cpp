#include "fingerprint/fingerprint_set.h"

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace fp {

using nlohmann::json;

void save_fingerprint(const FingerprintSet& s, const std::string& path) {
    engine::check(s.inputs.shape().rank == 4 && s.inputs.shape()[0] == s.size(),
                  path + ": fingerprint inputs do not match the number of targets");
    std::map<std::string, std::string> meta = s.info;
    meta["format"] = "timing-fingerprint";
    // Label sets are version 2, so that an fp_check from before them refuses the file instead of
    // reading its target_exits as timing evidence.
    meta["version"] = s.is_label() ? "2" : "1";
    meta["target_exits"] = json(s.target_exits).dump();
    meta["margins"] = json(s.margins).dump();
    meta["model_hash"] = s.model_hash;
    meta["model_name"] = s.model_name;
    meta["thresholds"] = json(s.thresholds).dump();
    meta["owner_latency_ms"] = json(s.owner_latency_ms).dump();
    meta["exit_macs"] = json(s.exit_macs).dump();
    meta["null_match_rate"] = json(s.null_match_rate).dump();
    meta["null_source"] = s.null_source;
    meta["kind"] = s.kind;
    if (s.is_label()) {  // timing files stay as they were
        meta["target_labels"] = json(s.target_labels).dump();
        meta["num_classes"] = std::to_string(s.num_classes);
    }
    engine::write_safetensors(path, {{"inputs", &s.inputs}}, meta);
}

FingerprintSet load_fingerprint(const std::string& path) {
    std::map<std::string, std::string> meta;
    auto tensors = engine::read_safetensors(path, &meta);
    engine::check(meta["format"] == "timing-fingerprint",
                  path + ": not a fingerprint file (format is '" + meta["format"] + "')");
    engine::check(meta["version"] == "1" || meta["version"] == "2",
                  path + ": unsupported fingerprint version '" + meta["version"] + "'");
    engine::check(tensors.count("inputs"), path + ": has no 'inputs' tensor");
    FingerprintSet s;
    try {
        s.inputs = tensors["inputs"];
        s.target_exits = json::parse(meta.at("target_exits")).get<std::vector<int>>();
        s.margins = json::parse(meta.at("margins")).get<std::vector<float>>();
        s.model_hash = meta.at("model_hash");
        s.model_name = meta.at("model_name");
        s.thresholds = json::parse(meta.at("thresholds")).get<std::vector<float>>();
        s.owner_latency_ms = json::parse(meta.at("owner_latency_ms")).get<std::vector<double>>();
        s.exit_macs = json::parse(meta.at("exit_macs")).get<std::vector<double>>();
        s.null_match_rate = json::parse(meta.at("null_match_rate")).get<double>();
        s.null_source = meta.at("null_source");
        if (meta.count("kind")) s.kind = meta.at("kind");  // absent: a timing file from before label sets
        if (s.is_label()) {
            s.target_labels = json::parse(meta.at("target_labels")).get<std::vector<int>>();
            s.num_classes = json::parse(meta.at("num_classes")).get<int>();
        }
    } catch (const std::exception& e) {
        engine::fail(path + ": fingerprint metadata is incomplete or malformed (" + e.what() + ")");
    }
    for (const char* k :
         {"format", "version", "target_exits", "margins", "model_hash", "model_name", "thresholds", "owner_latency_ms",
          "exit_macs", "null_match_rate", "null_source", "kind", "target_labels", "num_classes"})
        meta.erase(k);
    s.info = meta;
    const auto& sh = s.inputs.shape();
    engine::check(sh.rank == 4 && sh[0] == int64_t(s.target_exits.size()) && s.margins.size() == s.target_exits.size(),
                  path + ": " + std::to_string(s.target_exits.size()) + " targets for inputs of shape " + sh.str());
    engine::check(s.kind == kTimingKind || s.kind == kLabelKind,
                  path + ": unknown fingerprint kind '" + s.kind + "' (timing or label)");
    // A label set needs no latency profile: it may leave owner_latency_ms empty.
    engine::check(s.num_exits() >= 2 && int(s.exit_macs.size()) == s.num_exits() &&
                      (int(s.owner_latency_ms.size()) == s.num_exits() || (s.is_label() && s.owner_latency_ms.empty())),
                  path + ": per-exit tables disagree with the number of exits");
    if (s.is_label()) {
        engine::check(s.num_classes >= 2, path + ": a label fingerprint needs num_classes >= 2");
        engine::check(s.target_labels.size() == s.target_exits.size(),
                      path + ": " + std::to_string(s.target_labels.size()) + " target labels for " +
                          std::to_string(s.target_exits.size()) + " inputs");
        for (int c : s.target_labels)
            engine::check(c >= 0 && c < s.num_classes, path + ": target label " + std::to_string(c) +
                                                           " out of range (" + std::to_string(s.num_classes) +
                                                           " classes)");
    }
    for (int t : s.target_exits)
        engine::check(t >= 0 && t < s.num_exits(), path + ": target exit " + std::to_string(t) + " out of range");
    engine::check(s.null_match_rate > 0 && s.null_match_rate < 1, path + ": null match rate must lie in (0, 1)");
    for (float v : s.inputs.values()) engine::check(v >= 0.0f && v <= 1.0f, path + ": input pixels must lie in [0, 1]");
    return s;
}

}  // namespace fp
