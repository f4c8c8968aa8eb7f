#include "engine/signals.hpp"

#include <cerrno>
#include <csignal>
#include <ctime>

namespace spillway {

namespace {
sigset_t shutdown_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}
}  // namespace

void block_shutdown_signals() {
    const sigset_t set = shutdown_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_shutdown_signal(std::chrono::milliseconds timeout) {
    const sigset_t set = shutdown_set();
    if (timeout.count() <= 0) {
        int sig = 0;
        while (sigwait(&set, &sig) != 0) {
        }
        return sig;
    }
    timespec ts{};
    ts.tv_sec = timeout.count() / 1000;
    ts.tv_nsec = (timeout.count() % 1000) * 1000000L;
    for (;;) {
        const int sig = sigtimedwait(&set, nullptr, &ts);
        if (sig > 0) return sig;
        if (errno == EAGAIN) return 0;
        // EINTR: another signal arrived; keep waiting (a shorter wait is fine for a shutdown poll).
    }
}

}  // namespace spillway
