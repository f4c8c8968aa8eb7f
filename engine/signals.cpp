#include "engine/signals.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <ctime>

#include <unistd.h>

namespace spillway {

namespace {
sigset_t shutdown_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}
// The calling thread's alternate signal stack; taken down (before it is freed) when the thread
// ends, so a late signal cannot land on freed memory.
class AlternateStack {
public:
    AlternateStack() noexcept {
        const long minimum = ::sysconf(_SC_SIGSTKSZ);
        size_ = static_cast<size_t>(minimum > 0 ? minimum : 0) + 64 * 1024;
        memory_ = std::malloc(size_);
        if (!memory_) return;
        stack_t ss{};
        ss.ss_sp = memory_;
        ss.ss_size = size_;
        if (::sigaltstack(&ss, nullptr) != 0) {
            std::free(memory_);
            memory_ = nullptr;
        }
    }
    ~AlternateStack() {
        if (!memory_) return;
        stack_t off{};
        off.ss_flags = SS_DISABLE;
        ::sigaltstack(&off, nullptr);
        std::free(memory_);
    }
    AlternateStack(const AlternateStack&) = delete;
    AlternateStack& operator=(const AlternateStack&) = delete;

private:
    void* memory_ = nullptr;
    size_t size_ = 0;
};
}  // namespace

void ensure_alternate_signal_stack() noexcept {
    thread_local const AlternateStack stack;
    (void)stack;
}

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
