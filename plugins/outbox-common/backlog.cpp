// The max_pending bound kept per pipeline without a COUNT at every append (see Backlog).
#include "outbox_store.hpp"
#include "store_internal.hpp"

namespace spillway::plugins::outbox {

OutboxStore::Room OutboxStore::reserve_backlog(const std::string& pipeline, long long rows, bool may_wait) {
    if (rows > opts_.max_pending) return Room::kFull;
    std::unique_lock lock(backlog_mutex_);
    Backlog& b = backlog_[pipeline];  // a reference into an unordered_map outlives rehashing
    // The first count of a pipeline: the other appends wait for it rather than count alongside.
    // A count that appends of this instance commit rows during overstates the backlog by them
    // (they may or may not be in it), and at the start that would be every concurrent append.
    if (may_wait) count_done_.wait(lock, [&] { return b.known || !b.counting; });
    if (b.known && b.estimate() + rows <= opts_.max_pending) {
        b.delta += rows;
        b.reserved += static_cast<unsigned long long>(rows);
        return Room::kReserved;
    }
    // No room by the bound: count again, unless a count is under way or was taken too recently;
    // meanwhile FULL.
    if (b.known && (b.counting || host().monotonic_us() < b.next_count_us)) return Room::kFull;
    b.counting = true;
    return Room::kCount;
}

unsigned long long OutboxStore::count_begins(const std::string& pipeline) {
    std::lock_guard lock(backlog_mutex_);
    return backlog_[pipeline].finished;
}

// Rows reserved here whose append had not ended when the count began may or may not be in it:
// they count as not (reserved - finished_before), and settlements begun before the count ended
// are not taken off it (settled() checks the epoch). Both err towards a larger backlog.
bool OutboxStore::count_ended(const std::string& pipeline, long long pending, unsigned long long finished_before,
                              long long rows, int64_t recount_at_us) {
    std::lock_guard lock(backlog_mutex_);
    Backlog& b = backlog_[pipeline];
    b.known = true;
    b.counted = pending;
    b.delta = static_cast<long long>(b.reserved - finished_before);
    ++b.epoch;
    if (rows == 0) return true;  // stats(): not an append's count
    b.counting = false;
    b.next_count_us = recount_at_us;
    count_done_.notify_all();
    if (b.estimate() + rows > opts_.max_pending) return false;
    b.delta += rows;
    b.reserved += static_cast<unsigned long long>(rows);
    return true;
}

void OutboxStore::count_abandoned(const std::string& pipeline) {
    std::lock_guard lock(backlog_mutex_);
    backlog_[pipeline].counting = false;
    count_done_.notify_all();
}

void OutboxStore::append_ended(const std::string& pipeline, long long rows, long long not_added) {
    std::lock_guard lock(backlog_mutex_);
    Backlog& b = backlog_[pipeline];
    b.finished += static_cast<unsigned long long>(rows);
    b.delta -= not_added;
}

unsigned long long OutboxStore::settle_begins(const std::string& pipeline) {
    std::lock_guard lock(backlog_mutex_);
    auto it = backlog_.find(pipeline);
    return it == backlog_.end() ? 0 : it->second.epoch;
}

void OutboxStore::settled(const std::string& pipeline, long long rows, unsigned long long epoch) {
    std::lock_guard lock(backlog_mutex_);
    auto it = backlog_.find(pipeline);
    // A count that ended since the settlement began may already have left its rows out.
    if (it == backlog_.end() || !it->second.known || it->second.epoch != epoch) return;
    Backlog& b = it->second;
    b.delta -= rows;
    // The rows settled may be other writers' (never added here): the bound stays >= 0.
    if (b.estimate() < 0) b.delta = -b.counted;
}

void OutboxStore::became_pending(const std::string& pipeline, long long rows) {
    std::lock_guard lock(backlog_mutex_);
    auto it = backlog_.find(pipeline);
    if (it == backlog_.end()) return;
    // As an append that ended at once: a count beginning after this sees the rows.
    Backlog& b = it->second;
    b.delta += rows;
    b.reserved += static_cast<unsigned long long>(rows);
    b.finished += static_cast<unsigned long long>(rows);
}

}  // namespace spillway::plugins::outbox
