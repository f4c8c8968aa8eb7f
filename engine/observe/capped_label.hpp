// A label whose values come from clients (an event's type): the first `cap` distinct values keep
// their name and every later one reads "other", so what clients send cannot grow a family's
// series without bound. The empty value (none given) is always itself and takes no place. cap 0:
// the label is off.
#pragma once

#include <cstddef>
#include <mutex>
#include <set>
#include <string>

namespace spillway::observe {

class CappedLabel {
public:
    explicit CappedLabel(size_t cap) : cap_(cap) {}
    bool on() const { return cap_ > 0; }

    // `admit` false: a value not yet seen reads "other" and takes no place (an event refused as
    // invalid must not fill the cap with made-up types).
    std::string value(const std::string& raw, bool admit = true) {
        if (raw.empty()) return raw;
        std::lock_guard lock(mutex_);
        if (seen_.count(raw)) return raw;
        if (!admit || seen_.size() >= cap_) return "other";
        seen_.insert(raw);
        return raw;
    }

private:
    const size_t cap_;
    std::mutex mutex_;
    std::set<std::string> seen_;
};

}  // namespace spillway::observe
