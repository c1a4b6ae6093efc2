// Latency benchmarks run on one core: the first of those the process was started on (`taskset -c`).
#pragma once
#include <sched.h>

namespace bench {

inline void pin_to_first_cpu() {
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) {
            CPU_ZERO(&set);
            CPU_SET(c, &set);
            sched_setaffinity(0, sizeof set, &set);
            return;
        }
}

}  // namespace bench
