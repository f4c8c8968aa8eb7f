#include "single_guard.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace spillway::plugins::sqlite {

namespace {

const char* mode_name(sw_hold_mode m) { return m == SW_HOLD_EXCLUSIVE ? "direct-first" : "outbox-first"; }

std::string read_all(int fd) {
    std::string out;
    char buf[512];
    for (off_t at = 0; out.size() < 4096;) {
        const ssize_t n = ::pread(fd, buf, sizeof(buf), at);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
        at += n;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

}  // namespace

SingleGuard::~SingleGuard() {
    for (const auto& [pipeline, held] : held_) ::close(held.first);
}

std::string SingleGuard::lock_path(const std::string& pipeline) const {
    // Pipeline names are identifiers already; anything else is spelled safely anyway.
    std::string name;
    for (unsigned char c : pipeline) name += std::isalnum(c) || c == '-' || c == '_' ? static_cast<char>(c) : '_';
    return path_ + "-spillway-" + name + ".lock";
}

void SingleGuard::hold(const std::string& pipeline, sw_hold_mode mode, const std::string& holder) {
    std::lock_guard lock(mutex_);
    if (auto it = held_.find(pipeline); it != held_.end()) {
        if (it->second.second == mode) return;
        throw sdk::Error(SW_REJECT, "pipeline '" + pipeline + "' is held already in another mode by this store");
    }
    const std::string file = lock_path(pipeline);
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw sdk::Error(SW_RETRY, "sqlite: cannot open " + file + ": " + std::strerror(errno));
    if (::flock(fd, (mode == SW_HOLD_EXCLUSIVE ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        const int err = errno;
        std::string who;
        if (err == EWOULDBLOCK) {
            // Shared holders write nothing; a shared lock we could take now means that is what they are.
            if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
                who = "outbox-first engine(s)";
            } else {
                const std::string name = read_all(fd);
                who = (name.empty() ? std::string("an engine") : "'" + name + "'") + ", running it direct-first";
            }
        }
        ::close(fd);
        if (err != EWOULDBLOCK) throw sdk::Error(SW_RETRY, "sqlite: cannot lock " + file + ": " + std::strerror(err));
        throw sdk::Error(SW_REJECT,
                         "pipeline '" + pipeline + "' of " + path_ + " is run by another engine: " + who + " (lock " +
                             file + "). With coordination = \"single\" a direct-first pipeline runs in one engine only "
                             "(two would reorder a key: one's direct sends overtake the other's spilled rows); this one "
                             "wanted it " + mode_name(mode) + ". Stop the other engine, or run both outbox-first");
    }
    if (mode == SW_HOLD_EXCLUSIVE) {
        const std::string line = holder + "\n";
        if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, line.data(), line.size(), 0) < 0) {
            // The hold stands; only the name a refused engine would read is missing.
        }
    }
    held_[pipeline] = {fd, mode};
}

}  // namespace spillway::plugins::sqlite
