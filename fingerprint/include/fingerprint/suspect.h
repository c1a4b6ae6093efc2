// A suspect model as the verifier sees it: send an image, get a class back, and time it.
// The local suspect runs in this process (the white-box exit oracle can read its exit index);
// the remote one (tools/common/remote_suspect.h) is `engine_run serve` behind a loopback HTTP port.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fp {

struct Answer {
    int cls = -1;
    int exit = -1;   // -1: the suspect does not reveal it
    int64_t ns = 0;  // round-trip time measured by the verifier
};

class Suspect {
public:
    virtual ~Suspect() = default;
    // `copies` copies of the image in one request, answered one after another: the request's time
    // grows `copies` times the exit's latency while a network's jitter stays that of one request.
    virtual Answer query(const float* image, int copies = 1) = 0;
    // A request of the same size that does no inference (transport and call overhead only), timed
    // the same way.
    virtual int64_t null_query_ns(int copies = 1) = 0;
    virtual bool reveals_exit() const = 0;
    virtual std::string describe() const = 0;
    virtual std::vector<int64_t> input_shape() const = 0;  // [1, C, H, W]
};

// thresholds: empty keeps the model's own policy; one value applies to every exit. threads: the
// backend's compute threads (one gives the most repeatable latency).
std::unique_ptr<Suspect> make_local_suspect(const std::string& model_path, const std::vector<float>& thresholds,
                                            const std::string& backend, int threads = 1);

}  // namespace fp
