#include "native_isa.h"

#include <cstdlib>
#include <cstring>

namespace engine::native {

bool cpu_has_avx512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

Isa isa_of_this_cpu() {
    const char* forced = std::getenv("ENGINE_NATIVE_ISA");
    if (forced && !std::strcmp(forced, "avx2")) return Isa::avx2;
    return cpu_has_avx512() ? Isa::avx512 : Isa::avx2;
}

const char* isa_name(Isa isa) { return isa == Isa::avx512 ? "avx512" : "avx2"; }

}  // namespace engine::native
