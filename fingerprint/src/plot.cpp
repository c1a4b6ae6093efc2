// An SVG strip plot: one column per target exit, one dot per input at its median latency,
// coloured by whether the inferred exit matched; latency levels drawn as dashed lines.
#include <algorithm>
#include <cstdio>
#include <ostream>

#include "engine/atomic_file.h"
#include "fingerprint/verify.h"

namespace fp {

void write_latency_plot(const FingerprintSet& set, const CheckResult& r, const std::string& title,
                        const std::string& path) {
    const double W = 720, H = 420, left = 70, right = 20, top = 40, bottom = 50;
    const int K = set.num_exits();
    double lo = *std::min_element(r.latency_ms.begin(), r.latency_ms.end());
    double hi = *std::max_element(r.latency_ms.begin(), r.latency_ms.end());
    const double pad = std::max((hi - lo) * 0.1, hi * 0.01 + 1e-6);
    lo = std::max(0.0, lo - pad), hi += pad;
    auto x_of = [&](int exit, int i) {
        return left + (exit + 0.5 + 0.3 * ((i * 37 % 17) / 16.0 - 0.5)) * (W - left - right) / K;
    };
    auto y_of = [&](double ms) { return top + (hi - ms) / (hi - lo) * (H - top - bottom); };
    engine::write_file_atomically(path, [&](std::ostream& os) {
        char buf[512];
        os << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
           << "' font-family='sans-serif' font-size='12'>\n";
        os << "<rect width='100%' height='100%' fill='white'/>\n";
        os << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='14'>" << title << "</text>\n";
        os << "<line x1='" << left << "' y1='" << top << "' x2='" << left << "' y2='" << H - bottom
           << "' stroke='black'/>\n";
        os << "<line x1='" << left << "' y1='" << H - bottom << "' x2='" << W - right << "' y2='" << H - bottom
           << "' stroke='black'/>\n";
        for (int t = 0; t <= 4; ++t) {
            double ms = lo + (hi - lo) * t / 4;
            std::snprintf(buf, sizeof buf, "<text x='%g' y='%g' text-anchor='end'>%.3f</text>\n", left - 6,
                          y_of(ms) + 4, ms);
            os << buf;
        }
        for (int k = 0; k < K; ++k) {
            std::snprintf(buf, sizeof buf, "<text x='%g' y='%g' text-anchor='middle'>%d</text>\n",
                          left + (k + 0.5) * (W - left - right) / K, H - bottom + 18, k);
            os << buf;
        }
        os << "<text x='" << (left + W - right) / 2 << "' y='" << H - 12
           << "' text-anchor='middle'>target exit</text>\n";
        os << "<text x='16' y='" << (top + H - bottom) / 2 << "' transform='rotate(-90 16 " << (top + H - bottom) / 2
           << ")' text-anchor='middle'>median latency (ms)</text>\n";
        for (double level : r.level_ms) {
            std::snprintf(buf, sizeof buf,
                          "<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='#999' stroke-dasharray='4 3'/>\n", left,
                          y_of(level), W - right, y_of(level));
            os << buf;
        }
        for (int i = 0; i < set.size(); ++i) {
            const bool ok = r.observed_exit[i] == set.target_exits[i];
            std::snprintf(buf, sizeof buf, "<circle cx='%g' cy='%g' r='3.5' fill='%s' fill-opacity='0.8'/>\n",
                          x_of(set.target_exits[i], i), y_of(r.latency_ms[i]), ok ? "#1b7837" : "#c51b7d");
            os << buf;
        }
        os << "</svg>\n";
    });
}

}  // namespace fp
