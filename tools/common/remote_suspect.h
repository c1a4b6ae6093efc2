// A suspect behind `engine_run serve`'s loopback HTTP port: it reveals nothing but time.
#pragma once
#include <memory>
#include <string>

#include "fingerprint/suspect.h"

namespace fp {

// url: http://127.0.0.1:PORT (as printed by engine_run serve).
std::unique_ptr<Suspect> make_remote_suspect(const std::string& url);

}  // namespace fp
