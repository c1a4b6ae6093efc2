#include "native_conv_tuner.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "engine/aligned_vector.h"
#include "engine/atomic_file.h"
#include "engine/error.h"
#include "engine/hash.h"

namespace engine::native {

namespace {

constexpr const char* kFormat = "engine-native-kernels";
constexpr int kVersion = 6;  // 2: cold weights; 3: direct_avx512; 4: weights in L3, 3 ms per measurement;
                             // 5: the AVX2 Winograd products run position by position; 6: weights 8 MB apart
// How far apart, in bytes read, a run's weights come back in the tuner's timing (conv_kernel_times).
constexpr size_t kReuseBytes = size_t(8) << 20;

// What this process knows: the file's choices once read, and those it timed since.
struct Cache {
    std::mutex mu;
    bool loaded = false;
    std::string path;
    std::map<std::string, std::string> choices;
};

Cache& cache() {
    static Cache c;
    return c;
}

std::string key_of(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa) {
    char s[256];
    std::snprintf(s, sizeof s, "x%s w%s y%s s%lldx%lld p%lld,%lld,%lld,%lld d%lldx%lld g%lld%s%s %s", x.str().c_str(),
                  w.str().c_str(), y.str().c_str(), (long long)a.stride[0], (long long)a.stride[1], (long long)a.pad[0],
                  (long long)a.pad[1], (long long)a.pad[2], (long long)a.pad[3], (long long)a.dilation[0],
                  (long long)a.dilation[1], (long long)a.groups, a.fused_residual ? " residual" : "",
                  a.fused_relu ? " relu" : "", isa_name(isa));
    return s;
}

// Reads the file into c.choices; a missing file is an empty cache, a corrupt or foreign one is
// ignored with one line on stderr.
void load(Cache& c) {
    c.loaded = true;
    c.path = kernel_cache_path();
    if (c.path.empty() || !std::filesystem::exists(c.path)) return;
    std::string why;
    try {
        std::ifstream in(c.path);
        const nlohmann::json j = nlohmann::json::parse(in);
        if (!j.is_object() || j.value("format", "") != kFormat || j.value("version", 0) != kVersion)
            why = "not a version " + std::to_string(kVersion) + " kernel cache";
        else if (j.value("cpu", "") != cpu_model())
            why = "written on another CPU (" + j.value("cpu", "?") + ")";
        else {
            std::map<std::string, std::string> choices;
            ConvKernel k;
            for (const auto& [key, value] : j.at("choices").items()) {
                if (!value.is_string() || !conv_kernel_from_name(value.get<std::string>(), k)) {
                    why = "unknown kernel for '" + key + "'";
                    break;
                }
                choices[key] = value.get<std::string>();
            }
            if (why.empty()) c.choices = std::move(choices);
        }
    } catch (const std::exception& e) {
        why = std::string("unreadable (") + e.what() + ")";
    }
    if (!why.empty()) std::fprintf(stderr, "engine: kernel cache %s ignored: %s\n", c.path.c_str(), why.c_str());
}

void save(const Cache& c) {
    if (c.path.empty()) return;
    try {
        const std::filesystem::path dir = std::filesystem::path(c.path).parent_path();
        if (!dir.empty()) std::filesystem::create_directories(dir);
        nlohmann::json j{{"format", kFormat}, {"version", kVersion}, {"cpu", cpu_model()}, {"choices", c.choices}};
        write_file_atomically(c.path, [&](std::ostream& out) { out << j.dump(1) << '\n'; });
    } catch (const std::exception& e) {
        static bool warned = false;
        if (!warned) std::fprintf(stderr, "engine: kernel cache %s not written: %s\n", c.path.c_str(), e.what());
        warned = true;
    }
}

// Deterministic values in [-1, 1): the data the candidates are timed on.
void fill(AlignedVector<float>& v, uint32_t seed) {
    for (float& f : v) {
        seed = seed * 1664525u + 1013904223u;
        f = float(seed >> 8) / float(1u << 23) - 1.0f;
    }
}

// The running CPU's L2 size per core, or 1 MB where the C library cannot tell.
size_t l2_bytes() {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? size_t(l2) : size_t(1) << 20;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

KernelMode kernel_mode_from_env() {
    const char* v = std::getenv("ENGINE_KERNELS");
    if (!v || !*v || std::string(v) == "tuned") return KernelMode::tuned;
    if (std::string(v) == "fixed") return KernelMode::fixed;
    fail(std::string("ENGINE_KERNELS='") + v + "': expected fixed or tuned");
}

std::string cpu_model() {
    std::string model = "unknown";
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0) {
            const size_t colon = line.find(':');
            if (colon != std::string::npos) model = line.substr(line.find_first_not_of(" \t", colon + 1));
            break;
        }
    __builtin_cpu_init();
    return model + (__builtin_cpu_supports("avx512f") ? " avx512f" : "") +
           (__builtin_cpu_supports("avx2") ? " avx2" : "");
}

std::string kernel_cache_path() {
    if (const char* p = std::getenv("ENGINE_KERNEL_CACHE")) return std::string(p) == "off" ? "" : p;
    std::string dir;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
        dir = x;
    else if (const char* h = std::getenv("HOME"); h && *h)
        dir = std::string(h) + "/.cache";
    else
        return "";
    const std::string cpu = cpu_model();
    return dir + "/engine/kernels-" + sha256_hex(cpu.data(), cpu.size()).substr(0, 16) + ".json";
}

void kernel_cache_reset() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.loaded = false;
    c.choices.clear();
}

std::vector<std::vector<double>> conv_kernel_times(const std::vector<ConvKernel>& candidates, const Attrs& a,
                                                   const Shape& x, const Shape& w, const Shape& y, int threads,
                                                   int rounds) {
    const size_t n = candidates.size();
    // Line-aligned, as the plan's arena and scratch are (aligned_vector.h).
    AlignedVector<float> xs(size_t(x.numel())), ws(size_t(w.numel())), ys(size_t(y.numel())),
        rs(a.fused_residual ? size_t(y.numel()) : 0);
    fill(xs, 1), fill(ws, 2), fill(rs, 3);
    for (float& v : ws) v *= 0.1f;
    // In a network every convolution reads its own weights once a run, after the rest of the network's
    // weights have gone through the caches: ResNet-56's and MobileNet's are 8-14 MB. So each run reads
    // the next of `copies` copies of the weights, together kReuseBytes (or twice L2, where that is more),
    // and before each measurement a pass over all of them, untimed, leaves each copy where that cycle
    // puts it rather than where the other candidates' copies pushed it. Winograd F(4x4)'s transformed
    // weights are 4x the plain ones (ResNet-56's last stage: 590 KB a layer against 262 KB for F(2x2))
    // and pay for how cold they come back. (Twice L2 alone, 2 MB on a Zen 3 EPYC, kept them warm: F(4x4)
    // over channels was chosen for the 8x8 stage, 1.35x slower than F(2x2) in the network there. Once
    // before, 16 MB a candidate without the warming pass, every candidate's copies beside each other, put
    // weights in memory on a Xeon, whose network keeps them in L3, and chose the direct kernel for 8x8
    // planes; this rule is yet to be timed on that Xeon.)
    const size_t cold_bytes = std::max(kReuseBytes, 2 * l2_bytes());
    size_t work = 0;
    std::vector<AlignedVector<float>> us(n), raw(n);  // us: each copy in whole lines
    std::vector<size_t> copies(n), next(n, 0);
    for (size_t i = 0; i < n; ++i) {
        const size_t floats = whole_lines(conv_kernel_weights_floats(candidates[i], a, x, w, y));
        const size_t bytes = sizeof(float) * (floats ? floats : ws.size());  // what the kernel reads
        copies[i] = std::clamp<size_t>((cold_bytes + bytes - 1) / bytes, 1, 256);
        work = std::max(work, conv_kernel_work_floats(candidates[i], a, x, w, y, threads));
        raw[i].resize(ws.size() * (floats ? 1 : copies[i]));
        us[i].resize(floats * copies[i]);
        for (size_t c = 0; c < copies[i]; ++c) {
            if (!floats) std::copy(ws.begin(), ws.end(), raw[i].begin() + c * ws.size());
            conv_kernel_transform(candidates[i], a, x, TensorView{ws.data(), w}, y, us[i].data() + c * floats);
        }
        if (floats) std::copy(ws.begin(), ws.end(), raw[i].begin());
    }
    AlignedVector<float> scratch(work);
    const TensorView xv{xs.data(), x}, yv{ys.data(), y};
    auto run = [&](size_t i) {
        const size_t c = next[i];
        next[i] = (c + 1) % copies[i];
        const size_t floats = us[i].size() / copies[i];
        conv_kernel_forward(
            candidates[i], a, xv, TensorView{raw[i].data() + (raw[i].size() > ws.size() ? c * ws.size() : 0), w},
            us[i].data() + c * floats, nullptr, rs.empty() ? nullptr : rs.data(), yv, scratch.data(), threads);
    };
    // Repetitions per measurement: enough for about 3 ms, as long as a network's run, so that each
    // candidate is timed at the clock the core sustains on it. (With 0.3 ms, an AVX-512 kernel timed
    // just after an AVX2 one ran at the faster clock that AVX2 code keeps: FMA-heavy kernels gained
    // most, and the direct kernel was chosen for 8x8 planes where Winograd F(2x2) is faster in the network.)
    std::vector<int> reps(n);
    for (size_t i = 0; i < n; ++i) {
        run(i);
        const auto t0 = std::chrono::steady_clock::now();
        run(i);
        reps[i] = int(std::clamp(3e-3 / std::max(seconds_since(t0), 1e-7), 1.0, 512.0));
    }
    // Interleaved rounds: what others running on the machine add is spread over all candidates.
    std::vector<std::vector<double>> times(n);
    for (int r = 0; r < rounds; ++r)
        for (size_t i = 0; i < n; ++i) {
            for (size_t c = 0; c < copies[i]; ++c) run(i);
            const auto t0 = std::chrono::steady_clock::now();
            for (int k = 0; k < reps[i]; ++k) run(i);
            times[i].push_back(seconds_since(t0) / reps[i]);
        }
    return times;
}

ConvKernel conv_kernel_fastest(const std::vector<ConvKernel>& candidates, const Attrs& a, const Shape& x,
                               const Shape& w, const Shape& y, int threads) {
    if (candidates.size() == 1) return candidates[0];
    // A batch whose one run takes 50 ms gets 3 rounds, the rest 7; the least time of each
    // candidate is the one least disturbed by whatever else runs.
    const double one_run = 2.0 * double(y.numel()) * double(w[1] * w[2] * w[3]) / 50e9;
    const auto times = conv_kernel_times(candidates, a, x, w, y, threads, one_run > 0.05 ? 3 : 7);
    std::vector<double> best;
    for (const auto& t : times) best.push_back(*std::min_element(t.begin(), t.end()));
    size_t pick = 0;
    for (size_t i = 1; i < best.size(); ++i)
        if (best[i] < best[pick] && best[i] < 0.97 * best[0]) pick = i;
    return candidates[pick];
}

ConvKernel conv_kernel_tuned(const Attrs& a, const Shape& x, const Shape& w, const Shape& y, Isa isa) {
    const std::vector<ConvKernel> candidates = conv_kernel_candidates(a, x, w, y, isa);
    if (candidates.size() == 1) return candidates[0];
    // One sample on one thread: the latency configuration, and one choice for every batch size and
    // thread count, so that a sample gets the same result, to the bit, in any batch.
    Shape x1 = x, y1 = y;
    x1.dims[0] = y1.dims[0] = 1;
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (!c.loaded) load(c);
    const std::string key = key_of(a, x1, w, y1, isa);
    ConvKernel k;
    if (auto it = c.choices.find(key); it != c.choices.end() && conv_kernel_from_name(it->second, k) &&
                                       std::find(candidates.begin(), candidates.end(), k) != candidates.end())
        return k;
    k = conv_kernel_fastest(candidates, a, x1, w, y1, 1);
    c.choices[key] = conv_kernel_name(k);
    save(c);
    return k;
}

}  // namespace engine::native
