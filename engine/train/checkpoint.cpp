// Trainer checkpoints: one safetensors file holding every Constant of the model ("model/<name>"),
// the optimiser state ("opt/<param>/<slot>") and the pruning mask ("mask/<name>", 0/1), with the
// epoch, step, history and the run's configuration in the metadata. The data order and
// augmentation of an epoch derive from (seed, epoch) and dropout masks from (seed, step), so epoch
// and step are the whole random state at an epoch boundary.
#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "engine/train/trainer.h"

namespace engine::train {

namespace {

using nlohmann::json;

constexpr const char* kFormat = "engine-train-checkpoint";

// A float as the shortest decimal that reads back to it (0.1f -> 0.1), for readable JSON.
double dec(float v) { return std::strtod(fmt::format("{}", v).c_str(), nullptr); }

// Checkpoint key of every Constant: its name, or "<name>#<index>" where the name repeats.
std::map<int, std::string> constant_keys(const Graph& g) {
    std::map<std::string, int> uses;
    for (const Node& n : g.nodes)
        if (n.op == Op::Constant) uses[n.name]++;
    std::map<int, std::string> keys;
    for (size_t i = 0; i < g.nodes.size(); ++i)
        if (g.nodes[i].op == Op::Constant)
            keys[int(i)] = uses[g.nodes[i].name] > 1 ? g.nodes[i].name + "#" + std::to_string(i) : g.nodes[i].name;
    return keys;
}

json stats_to_json(const EpochStats& s) {
    return {
        {"epoch", s.epoch},       {"lr", s.lr},           {"train_loss", s.train_loss},    {"train_acc", s.train_acc},
        {"test_acc", s.test_acc}, {"seconds", s.seconds}, {"images_per_s", s.images_per_s}};
}

EpochStats stats_from_json(const json& j) {
    EpochStats s;
    s.epoch = j.at("epoch");
    s.lr = j.at("lr");
    s.train_loss = j.at("train_loss");
    s.train_acc = j.at("train_acc");
    s.test_acc = j.at("test_acc").get<std::vector<double>>();
    s.seconds = j.at("seconds");
    s.images_per_s = j.at("images_per_s");
    return s;
}

// "key (old, now new)" for the first leaf where `now` differs from `then`, or "".
std::string first_difference(const json& then, const json& now, const std::string& prefix) {
    if (now.is_object() && then.is_object()) {
        for (auto& [key, value] : now.items()) {
            const std::string name = prefix.empty() ? key : prefix + "." + key;
            if (!then.contains(key)) return name + " (absent, now " + value.dump() + ")";
            std::string d = first_difference(then[key], value, name);
            if (!d.empty()) return d;
        }
        return "";
    }
    return then == now ? "" : prefix + " " + then.dump() + " (now " + now.dump() + ")";
}

}  // namespace

std::string Trainer::config_json() const {
    const TrainConfig& c = config_;
    const OptimizerConfig& o = c.optimizer;
    const ScheduleConfig& s = c.schedule;
    json j{{"mode", c.mode},
           {"epochs", c.epochs},
           {"batch", batch_},
           {"seed", c.seed},
           {"train_images", train_.size()},
           {"optimizer",
            {{"kind", o.kind},
             {"momentum", dec(o.momentum)},
             {"dampening", dec(o.dampening)},
             {"nesterov", o.nesterov},
             {"beta1", dec(o.beta1)},
             {"beta2", dec(o.beta2)},
             {"eps", dec(o.eps)},
             {"weight_decay", dec(o.weight_decay)}}},
           {"schedule",
            {{"kind", s.kind},
             {"lr", dec(s.lr)},
             {"total_steps", s.total_steps},
             {"pct_start", dec(s.pct_start)},
             {"div_factor", dec(s.div_factor)},
             {"final_div_factor", dec(s.final_div_factor)},
             {"milestones", s.milestones},
             {"gamma", dec(s.gamma)},
             {"min_lr", dec(s.min_lr)}}},
           {"augment", {{"enabled", c.augment.enabled}, {"pad", c.augment.pad}, {"flip", c.augment.flip}}},
           {"train_only", c.train_only},
           {"reinit", c.reinit},
           {"prune", c.prune},
           {"adversarial", c.adversarial},
           {"pgd",
            {{"eps", dec(c.pgd.eps)},
             {"step", dec(c.pgd.step)},
             {"steps", c.pgd.steps},
             {"random_start", c.pgd.random_start}}},
           {"teacher", teacher_ != nullptr},
           {"kd_temperature", dec(c.kd_temperature)},
           {"kd_alpha", dec(c.kd_alpha)}};
    if (c.renormalize) j["renormalize_images"] = c.renormalize_images;  // absent otherwise: older checkpoints resume
    if (c.mimic_exits) j["mimic_margin"] = dec(c.mimic_margin);
    if (c.trades) j["trades_beta"] = dec(c.trades_beta);
    return j.dump();
}

void Trainer::save_checkpoint(const std::string& path) const {
    std::vector<std::pair<std::string, const Tensor*>> tensors;
    for (auto& [node, key] : constant_keys(model_.graph))
        tensors.emplace_back("model/" + key, &model_.graph.nodes[node].value);
    for (auto& [name, t] : optimizer_->state()) tensors.emplace_back("opt/" + name, t);
    const auto keys = constant_keys(model_.graph);
    std::vector<Tensor> mask_values;
    mask_values.reserve(mask_.nodes.size());
    for (size_t i = 0; i < mask_.nodes.size(); ++i) {
        mask_values.emplace_back(model_.graph.nodes[mask_.nodes[i]].value.shape());
        for (size_t k = 0; k < mask_.keep[i].size(); ++k) mask_values.back()[int64_t(k)] = mask_.keep[i][k];
        tensors.emplace_back("mask/" + keys.at(mask_.nodes[i]), &mask_values.back());
    }
    json history = json::array();
    for (const auto& s : history_) history.push_back(stats_to_json(s));
    write_safetensors(path, tensors,
                      {{"format", kFormat},
                       {"version", "1"},
                       {"epoch", std::to_string(epoch_)},
                       {"step", std::to_string(step_)},
                       {"optimizer_steps", std::to_string(optimizer_->steps())},
                       {"train_seconds", json(train_seconds_).dump()},
                       {"graph_nodes", std::to_string(model_.graph.nodes.size())},
                       {"history", history.dump()},
                       {"config", config_json()}});
}

void Trainer::load_checkpoint(const std::string& path) {
    std::map<std::string, std::string> meta;
    auto tensors = read_safetensors(path, &meta);
    auto get = [&](const char* key) -> const std::string& {
        auto it = meta.find(key);
        check(it != meta.end(), path + ": not a training checkpoint (no '" + std::string(key) + "' in its metadata)");
        return it->second;
    };
    check(get("format") == kFormat, path + ": not a training checkpoint (format '" + get("format") + "')");
    check(get("graph_nodes") == std::to_string(model_.graph.nodes.size()),
          path + ": written for a graph of " + get("graph_nodes") + " nodes, this model has " +
              std::to_string(model_.graph.nodes.size()));
    const std::string diff = first_difference(json::parse(get("config")), json::parse(config_json()), "");
    check(diff.empty(), path + ": written by a run with " + diff + "; resume with the same settings");
    // Check every tensor before changing anything, so that a bad file leaves the trainer as it was.
    std::vector<std::pair<const Tensor*, Tensor*>> copies;
    auto plan_copy = [&](const std::string& key, Tensor* into) {
        auto it = tensors.find(key);
        check(it != tensors.end(), path + ": missing tensor '" + key + "'");
        check(it->second.numel() == into->numel(), path + ": tensor '" + key + "' has shape " +
                                                       it->second.shape().str() + ", expected " + into->shape().str());
        copies.emplace_back(&it->second, into);
    };
    const auto keys = constant_keys(model_.graph);
    for (auto& [node, key] : keys) plan_copy("model/" + key, &model_.graph.nodes[node].value);
    for (auto& [name, t] : optimizer_->state()) plan_copy("opt/" + name, t);
    std::vector<Tensor> masks;
    masks.reserve(mask_.nodes.size());
    for (int node : mask_.nodes) {
        masks.emplace_back(model_.graph.nodes[node].value.shape());
        plan_copy("mask/" + keys.at(node), &masks.back());
    }
    const int epoch = std::stoi(get("epoch"));
    const int64_t step = std::stoll(get("step"));
    check(step == int64_t(epoch) * steps_per_epoch_ && epoch <= config_.epochs,
          path + ": step " + std::to_string(step) + " is not the end of epoch " + std::to_string(epoch));
    const json history = json::parse(get("history"));

    for (auto& [from, to] : copies) std::copy(from->values().begin(), from->values().end(), to->values().begin());
    mask_.pruned = 0;
    for (size_t i = 0; i < mask_.nodes.size(); ++i)
        for (size_t k = 0; k < mask_.keep[i].size(); ++k) {
            mask_.keep[i][k] = masks[i][int64_t(k)] != 0.0f;
            mask_.pruned += !mask_.keep[i][k];
        }
    epoch_ = epoch;
    step_ = step;
    optimizer_->set_steps(std::stoll(get("optimizer_steps")));
    train_seconds_ = json::parse(get("train_seconds")).get<double>();
    history_.clear();
    for (const auto& j : history) history_.push_back(stats_from_json(j));
}

}  // namespace engine::train
