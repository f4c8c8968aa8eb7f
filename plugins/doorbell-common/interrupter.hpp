// An eventfd that a wait polls next to its socket: fire() from any thread makes every current and
// later poll on it return at once, until clear(). Also the interruptible sleep of a degraded wait.
#ifndef SPILLWAY_PLUGINS_DOORBELL_INTERRUPTER_HPP
#define SPILLWAY_PLUGINS_DOORBELL_INTERRUPTER_HPP

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace spillway::plugins::doorbell {

class Interrupter {
public:
    Interrupter() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    ~Interrupter() { ::close(fd_); }
    Interrupter(const Interrupter&) = delete;
    Interrupter& operator=(const Interrupter&) = delete;

    int fd() const { return fd_; }
    void fire() {
        const uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);  // only fails if already huge
    }
    void clear() {
        uint64_t value = 0;
        [[maybe_unused]] const ssize_t n = ::read(fd_, &value, sizeof value);  // EAGAIN when not fired
    }
    bool fired() const { return sleep_for(0); }

    // Sleeps until `deadline` unless fired first; returns true when fired.
    bool sleep_until(std::chrono::steady_clock::time_point deadline) const {
        for (;;) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (sleep_for(std::max<int64_t>(0, left.count()))) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
        }
    }

private:
    bool sleep_for(int64_t ms) const {
        pollfd p{fd_, POLLIN, 0};
        int n;
        do n = ::poll(&p, 1, static_cast<int>(ms));
        while (n < 0 && errno == EINTR);
        return n > 0;
    }
    int fd_;
};

}  // namespace spillway::plugins::doorbell

#endif
