// CPU time of processes, from /proc: what a scenario costs, and where, besides how long it takes.
#ifndef SPILLWAY_BENCH_CPU_HPP
#define SPILLWAY_BENCH_CPU_HPP

#include <sys/types.h>

namespace spillway::bench {

// utime + stime of one process, all its threads, in seconds.
double cpu_seconds(pid_t pid);
// The same summed over a server and its direct children (PostgreSQL's backends and workers).
double tree_cpu_seconds(pid_t parent);
// This process (all threads) and the calling thread, from the kernel's nanosecond clocks: fine
// enough for measures of a fraction of a second.
double process_cpu_seconds();
double thread_cpu_seconds();

}  // namespace spillway::bench

#endif
