#include "cuda/cuda_exit_wiring.h"

#include "cuda/cuda_host_plan.h"
#include "engine/error.h"

namespace engine::cuda {

const char* exit_step_name(ExitStep s) {
    switch (s) {
        case ExitStep::Start:
            return "start";
        case ExitStep::SelectBucket:
            return "select";
        case ExitStep::Segment:
            return "segment";
        case ExitStep::SegmentSwitch:
            return "switch";
        case ExitStep::Decide:
            return "decide";
        case ExitStep::Compact:
            return "compact";
        case ExitStep::NextIf:
            return "if";
    }
    return "?";
}

ExitGraphWiring plan_exit_graph(int segments, int max_batch) {
    check(segments >= 1, "cuda early exit: the model has no exits");
    ExitGraphWiring w;
    w.buckets = batch_buckets(max_batch);
    const bool bucketed = w.buckets.size() > 1;
    for (int k = 0; k < segments; ++k) {
        ExitGraphWiring::Level L;
        L.segment = k;
        if (k > 0) L.parent_if = w.levels[k - 1].if_handle;
        if (k == 0) L.steps.push_back(ExitStep::Start);
        if (bucketed) {
            L.switch_handle = static_cast<int>(w.handles.size());
            w.handles.push_back({ExitGraphWiring::HandleKind::Switch, k, static_cast<int>(w.buckets.size())});
            L.steps.push_back(ExitStep::SelectBucket);
            L.steps.push_back(ExitStep::SegmentSwitch);
        } else {
            L.steps.push_back(ExitStep::Segment);
        }
        L.steps.push_back(ExitStep::Decide);
        if (k + 1 < segments) {
            // At batch 1 a sample that stays needs no move; compaction exists only for batches.
            if (max_batch > 1) L.steps.push_back(ExitStep::Compact);
            L.if_handle = static_cast<int>(w.handles.size());
            w.handles.push_back({ExitGraphWiring::HandleKind::If, k, 1});
            L.steps.push_back(ExitStep::NextIf);
        }
        w.levels.push_back(std::move(L));
    }
    return w;
}

std::string describe(const ExitGraphWiring& w) {
    std::string s;
    for (const auto& L : w.levels) {
        s += "level " + std::to_string(L.segment) +
             (L.parent_if >= 0 ? " (in if#" + std::to_string(L.parent_if) + ")" : " (root)") + ":";
        for (ExitStep st : L.steps) {
            s += std::string(" ") + exit_step_name(st);
            if (st == ExitStep::SelectBucket || st == ExitStep::SegmentSwitch)
                s += "#" + std::to_string(L.switch_handle);
            if (st == ExitStep::NextIf) s += "#" + std::to_string(L.if_handle);
        }
        s += "\n";
    }
    return s;
}

}  // namespace engine::cuda
