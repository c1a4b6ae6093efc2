// `engine_run serve`: a model behind a loopback HTTP port, as a suspect's black-box API.
//   GET  /info      -> {"input": [1,C,H,W], "exits": K}
//   POST /predict   body: N*C*H*W little-endian float32 pixels, N images (1 <= N <= kMaxRequestImages)
//                   -> {"class": c, "probability": p} of the first, "classes": [...] of all
//   POST /echo      any body of at most that size -> {"bytes": n}; no inference (the transport alone)
// The answer carries no exit index: a verifier learns the exit only from the response time. A batch
// is answered image by image, each with its own early exit, as a batch-1 service would.
#pragma once
#include <string>

namespace engine::cli {

constexpr int kMaxRequestImages = 256;
// threads: the backend's compute threads (1, the default of the tool, gives the most repeatable latency).
int serve_model(const std::string& model_path, const std::string& listen, const std::string& thresholds,
                const std::string& backend, int threads);

// Splits "host:port", accepting only loopback hosts; throws naming the address otherwise.
void parse_loopback_address(const std::string& address, std::string& host, int& port);

}  // namespace engine::cli
