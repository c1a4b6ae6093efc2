#include "native_threads.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace engine::native {

namespace {

// Denormal operands and results take a microcode assist (on the order of 100 cycles each) in the
// FMA loops; a network's activations and gradients can decay into that range. FTZ | DAZ in MXCSR
// makes them zeros, as TensorFlow does on its compute threads. The setting stays on the thread.
void flush_denormals() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

bool user_chose_binding() {
    for (const char* v : {"OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY"})
        if (std::getenv(v)) return true;
    return false;
}

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

}  // namespace

void threads_prepare(int threads) {
    // OpenMP teams belong to the thread that opens the parallel region: a caller other than the one
    // that created the backend gets its own team, prepared on its first forward.
    thread_local int prepared = 0;
    if (threads <= prepared) return;
    flush_denormals();
    if (threads > 1) {
        // Unpinned workers migrate between cores and lose their caches between layers; pinned, worker
        // i keeps the slice of weights and activations it touched in the previous run. The caller
        // (thread 0) keeps its mask: it is the user's, and threads it creates later inherit it.
        const std::vector<int> cpus = user_chose_binding() ? std::vector<int>() : allowed_cpus();
#pragma omp parallel num_threads(threads)
        {
            flush_denormals();
            const int t = omp_get_thread_num();
            if (t > 0 && !cpus.empty()) {
                cpu_set_t one;
                CPU_ZERO(&one);
                CPU_SET(cpus[t % cpus.size()], &one);
                pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            }
        }
    }
    prepared = threads;
}

}  // namespace engine::native
