// Which vector instruction set the native kernels use: AVX2/FMA everywhere, AVX-512 where the CPU
// has it (the *_avx512.cpp files, compiled with -mavx512f and called only when this says so).
#pragma once

namespace engine::native {

enum class Isa { avx2, avx512 };

// The running CPU's best: avx512 where __builtin_cpu_supports("avx512f"), unless the environment
// variable ENGINE_NATIVE_ISA is "avx2" (to run and test the AVX2 path on an AVX-512 machine).
Isa isa_of_this_cpu();
bool cpu_has_avx512();
const char* isa_name(Isa isa);

}  // namespace engine::native
