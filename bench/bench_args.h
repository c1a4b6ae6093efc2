// The options the kernel benchmarks share, --batch, --threads and --rounds, parsed by CLI11 so that
// a mistyped option or a bad number stops the run with a one-line error instead of timing defaults.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace bench {

struct BenchArgs {
    int64_t batch = 1;
    int threads = 1;  // ignored where with_threads is false
    int rounds = 25;
};

// Fills `a` from the command line (its fields hold the defaults). Returns -1 to go on, else the
// status to exit with (0 after --help).
inline int parse_bench_args(int argc, char** argv, const std::string& about, BenchArgs& a, bool with_threads = true) {
    CLI::App app{about};
    app.add_option("--batch", a.batch, "images per batch")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
    if (with_threads) app.add_option("--threads", a.threads, "compute threads")->check(CLI::Range(1, 1024));
    app.add_option("--rounds", a.rounds, "timed rounds")->check(CLI::Range(1, 1000000));
    CLI11_PARSE(app, argc, argv);
    return -1;
}

}  // namespace bench
