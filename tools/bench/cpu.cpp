#include "cpu.hpp"

#include <dirent.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

namespace spillway::bench {

namespace {

struct Stat {
    pid_t parent = 0;
    unsigned long long ticks = 0;
};

bool read_stat(pid_t pid, Stat& out) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const auto close = text.rfind(')');
    if (close == std::string::npos) return false;
    // Fields after the command name (which may hold spaces) start after the last ')', at field 3.
    std::istringstream rest(text.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 4) out.parent = static_cast<pid_t>(std::stol(field));
        if (i == 14 || i == 15) out.ticks += std::stoull(field);
    }
    return true;
}

double clock_seconds(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double seconds(unsigned long long ticks) { return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)); }

}  // namespace

double cpu_seconds(pid_t pid) {
    Stat s;
    return read_stat(pid, s) ? seconds(s.ticks) : 0;
}

double tree_cpu_seconds(pid_t parent) {
    unsigned long long ticks = 0;
    DIR* proc = opendir("/proc");
    if (!proc) return 0;
    while (const dirent* e = readdir(proc)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        const pid_t pid = static_cast<pid_t>(std::stol(e->d_name));
        Stat s;
        if (read_stat(pid, s) && (pid == parent || s.parent == parent)) ticks += s.ticks;
    }
    closedir(proc);
    return seconds(ticks);
}

double process_cpu_seconds() { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

double thread_cpu_seconds() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace spillway::bench
