// The shape of the CUDA graph that runs early exit on the device (cuda_graph_exits.cpp builds it):
// a pure description, computed without a device so that a unit test can check which node follows
// which and which conditional handle guards which segment.
//
// Level k is one graph: [start (level 0)] -> [select bucket] -> segment k -> decide exit k -> [compact] -> IF { level
// k+1 }. The root graph is level 0; level k+1 is the body of level k's IF node, so a sample batch that has entirely
// left at exit k never launches segment k+1: no host round trip, no work past the exit. With more than one batch
// bucket, segment k is a SWITCH node with one captured body per bucket (captured cuDNN calls have a fixed batch),
// chosen by a select kernel from the live count. Each handle is set by a kernel of the same graph that holds its
// conditional node, upstream of it.
#pragma once
#include <string>
#include <vector>

namespace engine::cuda {

enum class ExitStep {
    Start,          // kernel (level 0 only): stamps the start time, numbers the rows
    SelectBucket,   // kernel: sets the level's SWITCH handle from the live count
    Segment,        // the segment captured once, at the only bucket (batch max_batch)
    SegmentSwitch,  // SWITCH node: body b = the segment captured at batch buckets[b]
    Decide,         // kernel: softmax top class per live row, results, keep list, live count, IF handle
    Compact,        // kernel: the rows that stay move to the front of every value later segments read
    NextIf,         // IF node whose body is the next level
};
const char* exit_step_name(ExitStep s);

struct ExitGraphWiring {
    enum class HandleKind { Switch, If };
    struct Handle {
        HandleKind kind;
        int level;   // the graph that holds the conditional node (and the kernel that sets it)
        int bodies;  // IF: 1; SWITCH: one per bucket
    };
    struct Level {
        int segment;
        int parent_if = -1;           // handle of the IF whose body this level is (-1: the root graph)
        int switch_handle = -1;       // set by SelectBucket, read by SegmentSwitch (-1: one bucket)
        int if_handle = -1;           // set by Decide, read by NextIf (-1: the last level)
        std::vector<ExitStep> steps;  // a chain: each step depends on the one before it
    };
    std::vector<int> buckets;  // batch sizes the segments are captured at, descending
    std::vector<Handle> handles;
    std::vector<Level> levels;
};

ExitGraphWiring plan_exit_graph(int segments, int max_batch);
std::string describe(const ExitGraphWiring& w);  // one line per level, for messages and tests

}  // namespace engine::cuda
