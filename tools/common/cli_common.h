// Plumbing shared by the command-line tools: the error boundary, a progress bar and threshold
// parsing. Not part of libengine.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace engine::cli {

// --kernels fixed|tuned on `app`: how the native backend picks each convolution's kernel (fixed: the
// rule every machine follows, for determinism tests; tuned: the fastest on this CPU, timed at plan
// time). The tool passes it on as ENGINE_KERNELS, which make_backend's native backend reads.
void add_kernels_option(CLI::App& app);

// Runs body; an engine::Error or std::exception becomes one line "<tool>: <message>" on stderr
// and exit status error_status (1 unless the tool gives its statuses other meanings, as fp_check
// does). Returns body's status otherwise.
int guarded_main(const char* tool, const std::function<int()>& body, int error_status = 1);

// A one-line progress bar on stderr ("label [=====>    ] 42% 1.2k img/s ETA 0:31 loss 0.71"),
// redrawn at most 10 times a second, silent when stderr is not a terminal except for the final line.
class Progress {
public:
    Progress(std::string label, int64_t total, std::string unit = "img");
    void update(int64_t done, const std::string& extra = "");
    void finish(const std::string& extra = "");

private:
    std::string label_, unit_;
    int64_t total_;
    double start_s_, last_draw_s_ = -1;
    bool tty_;
    void draw(int64_t done, const std::string& extra, bool final_line);
};

double now_seconds();

// "ref | native | ...": the backends this build holds, for --backend's help.
std::string backend_choices();

// Parses "0.9" or "0.5,0.7,0.9" into one threshold per exit (a single value applies to all).
std::vector<float> parse_thresholds(const std::string& text, int num_exits);

}  // namespace engine::cli
