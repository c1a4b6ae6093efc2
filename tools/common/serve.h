// `engine_run serve`: a model behind a loopback HTTP port, as a suspect's black-box API.
//   GET  /info      -> {"input": [1,C,H,W], "exits": K}
//   POST /predict   body: C*H*W little-endian float32 pixels -> {"class": c, "probability": p}
// The answer carries no exit index: a verifier learns the exit only from the response time.
#pragma once
#include <string>

namespace engine::cli {

// threads: the backend's compute threads (1, the default of the tool, gives the most repeatable latency).
int serve_model(const std::string& model_path, const std::string& listen, const std::string& thresholds,
                const std::string& backend, int threads);

// Splits "host:port", accepting only loopback hosts; throws naming the address otherwise.
void parse_loopback_address(const std::string& address, std::string& host, int& port);

}  // namespace engine::cli
