#include "scripted/store_control.hpp"

namespace spillway::fakes::scripted {

namespace {
std::string text(sw_bytes b) { return b.ptr ? std::string(b.ptr, b.len) : std::string(); }
}  // namespace

StoreControl& StoreControl::get() {
    // Never destroyed: a relay thread of an engine a failed test leaked may still call in at exit.
    static StoreControl* block = new StoreControl();
    return *block;
}

void StoreControl::reset() {
    std::lock_guard lock(mutex_);
    pending_.clear();
    fail_ = false;
    probes_.clear();
    holds_.clear();
    appends_.clear();
}

void StoreControl::set_pending(std::set<std::string> keys) {
    std::lock_guard lock(mutex_);
    pending_ = std::move(keys);
}

void StoreControl::fail_probes(bool fail) {
    std::lock_guard lock(mutex_);
    fail_ = fail;
}

bool StoreControl::answer(const sw_bytes* keys, size_t n, uint8_t* found) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> asked;
    for (size_t i = 0; i < n; ++i) {
        asked.push_back(text(keys[i]));
        found[i] = pending_.count(asked.back()) ? 1 : 0;
    }
    probes_.push_back(std::move(asked));
    return !fail_;
}

void StoreControl::held(const std::string& pipeline, uint32_t mode) {
    std::lock_guard lock(mutex_);
    holds_.emplace_back(pipeline, mode);
}

void StoreControl::appended(const sw_event& e) {
    std::lock_guard lock(mutex_);
    appends_.push_back({text(e.event_id), text(e.key), e.key.ptr != nullptr});
}

std::vector<std::vector<std::string>> StoreControl::probes() const {
    std::lock_guard lock(mutex_);
    return probes_;
}

std::vector<std::pair<std::string, uint32_t>> StoreControl::holds() const {
    std::lock_guard lock(mutex_);
    return holds_;
}

std::vector<Appended> StoreControl::appends() const {
    std::lock_guard lock(mutex_);
    return appends_;
}

}  // namespace spillway::fakes::scripted
