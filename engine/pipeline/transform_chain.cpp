#include "engine/pipeline/transform_chain.hpp"


#include <cstdio>
#include <cstring>
#include <numeric>

namespace spillway::pipeline {

namespace {

void set(sw_result& r, sw_status status, uint32_t flags, const std::string& message) {
    std::memset(&r, 0, sizeof r);
    r.status = status;
    r.flags = flags;
    r.partition = -1;
    r.offset = -1;
    std::snprintf(r.message, sizeof r.message, "%s", message.c_str());
}

// What the host keeps of its own whatever a transform wrote: the event's identity and history.
sw_event rewritten(const sw_event& in, const sw_event& out) {
    sw_event e = out;
    e.struct_size = sizeof(sw_event);
    e.row_id = in.row_id;
    e.event_id = in.event_id;
    e.pipeline = in.pipeline;
    e.created_at_us = in.created_at_us;
    e.attempts = in.attempts;
    e.last_error = in.last_error;
    if (!e.headers) e.n_headers = 0;
    return e;
}

}  // namespace

TransformChain::TransformChain(Shared& shared, std::vector<plugin::TransformPort> transforms)
    : s_(shared), transforms_(std::move(transforms)) {
    for (const auto& t : transforms_) {
        observe::Labels l = s_.labels;
        l.emplace_back("transform", t.id());
        // Scraped at 0 from the start, like every counter a healthy pipeline may never move.
        s_.metrics.add("transform_dropped_total", l, 0);
        s_.metrics.add("transform_rejected_total", l, 0);
        labels_.push_back(std::move(l));
    }
}

TransformChain::Applied::~Applied() {
    for (auto it = held_.rbegin(); it != held_.rend(); ++it) it->port->release_batch(it->batch);
}

void TransformChain::fail_all(const plugin::TransformPort& t, const std::string& why, const std::vector<size_t>& from,
                              std::span<sw_result> results) const {
    for (size_t i : from) set(results[i], SW_RETRY, 0, t.id() + ": " + why);
    s_.log->warn("pipeline {}: {} failed on a batch of {} events, which will be sent again later: {}", s_.spec.name,
                 t.id(), from.size(), why);
}

TransformChain::Applied TransformChain::apply(std::span<const sw_event> events, std::span<sw_result> results) const {
    Applied a;
    a.from_.resize(events.size());
    std::iota(a.from_.begin(), a.from_.end(), size_t{0});
    std::span<const sw_event> in = events;
    for (size_t k = 0; k < transforms_.size() && !in.empty(); ++k) {
        const plugin::TransformPort& t = transforms_[k];
        std::vector<sw_result> r(in.size());
        sw_batch out{};
        out.struct_size = sizeof(sw_batch);
        const sw_status st = t.apply(in, r, out);
        if (out.plugin_data || out.events) a.held_.push_back({&t, out});
        if (st != SW_OK || out.n != in.size() || !out.events) {
            const std::string why = st != SW_OK ? t.describe(st)
                                                : "returned " + std::to_string(out.n) + " events for " +
                                                      std::to_string(in.size());
            fail_all(t, why, a.from_, results);
            a.from_.clear();
            a.stages_.clear();
            return a;
        }
        std::vector<sw_event> next;
        std::vector<size_t> from;
        next.reserve(in.size());
        from.reserve(in.size());
        for (size_t j = 0; j < in.size(); ++j) {
            const size_t i = a.from_[j];
            const sw_result& rj = r[j];
            if (rj.status == SW_OK && !(rj.flags & SW_RESULT_DROPPED)) {
                next.push_back(rewritten(in[j], out.events[j]));
                from.push_back(i);
                continue;
            }
            const std::string id(in[j].event_id.ptr ? std::string(in[j].event_id.ptr, in[j].event_id.len) : "");
            const std::string reason = t.id() + ": " + std::string(rj.message, strnlen(rj.message, sizeof rj.message));
            if (rj.status == SW_OK) {
                set(results[i], SW_OK, SW_RESULT_DROPPED, reason);
                s_.metrics.add("transform_dropped_total", labels_[k]);
                dropped_log_.log(*s_.log, spdlog::level::info, "event " + id + " dropped by " + t.id(),
                                 {{"pipeline", s_.spec.name}, {"event_id", id}, {"transform", t.id()},
                                  {"reason", reason}});
            } else if (rj.status == SW_REJECT) {
                set(results[i], SW_REJECT, 0, reason);
                // Logged where it ends: the publisher's refusal, the relay's dead letter.
                s_.metrics.add("transform_rejected_total", labels_[k]);
            } else {
                // A transform is a pure function: RETRY (or FATAL) for one event means nothing
                // better than for the batch. It is sent again later, not guessed at.
                set(results[i], SW_RETRY, 0, reason);
            }
        }
        a.stages_.push_back(std::move(next));
        a.from_ = std::move(from);
        in = a.stages_.back();
    }
    if (a.stages_.empty()) a.stages_.emplace_back(events.begin(), events.end());
    return a;
}

}  // namespace spillway::pipeline
