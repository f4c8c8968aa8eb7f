// The publish side of a pipeline: direct to Kafka first, and into the outbox — with the same
// event_id — whenever Kafka cannot confirm in time, the key already has events waiting, or the
// circuit is open. A caller hears "accepted" only for what Kafka acknowledged or the store committed.
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/topic_name.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <unordered_set>

namespace spillway::pipeline {

namespace {
int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
int64_t mono_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void Pipeline::prepare(Event& e, int64_t accepted_us) {
    if (e.event_id.empty()) e.event_id = uuid_v7(static_cast<uint64_t>(accepted_us / 1000));
    if (e.topic.empty()) e.topic = spec_.topic;
    if (e.created_at_us == 0) e.created_at_us = accepted_us;
}

// Counts and latencies per (path, reason) group rather than per event: a batch of 1,000 spent
// more in building label sets than librdkafka spent producing it.
void Pipeline::record(const std::vector<Outcome>& outcomes, int64_t started_us) {
    const double seconds = static_cast<double>(mono_us() - started_us) / 1e6;
    std::map<std::pair<Path, Reason>, uint64_t> groups;
    for (const Outcome& o : outcomes) {
        ++groups[{o.path, o.reason}];
        log_->debug("event {} {} ({}){}{}", o.event_id, path_name(o.path), reason_name(o.reason),
                    o.message.empty() ? "" : ": ", o.message);
    }
    std::map<Path, uint64_t> per_path;
    for (const auto& [group, n] : groups) {
        observe::Labels l = labels_;
        l.emplace_back("path", path_name(group.first));
        l.emplace_back("reason", reason_name(group.second));
        metrics_.add("publish_total", l, static_cast<double>(n));
        per_path[group.first] += n;
    }
    for (const auto& [path, n] : per_path) {
        observe::Labels lat = labels_;
        lat.emplace_back("path", path_name(path));
        metrics_.observe("publish_latency_seconds", lat, seconds, n);
        if (path == Path::Direct) n_direct_ += n;
        else if (path == Path::Outbox) n_outbox_ += n;
        else n_refused_ += n;
    }
}

Outcome Pipeline::publish(Event event) {
    std::vector<Event> one;
    one.push_back(std::move(event));
    return std::move(publish(std::move(one)).front());
}

std::vector<Outcome> Pipeline::publish(std::vector<Event> events) {
    const int64_t started = mono_us();
    std::vector<Outcome> out(events.size());
    // Counted before accepting_ is read, so stop() either sees this call or this call sees the
    // stop: stop() waits for counted calls before the sink and store go away.
    publishing_.fetch_add(1);
    struct Leave {
        Pipeline& p;
        ~Leave() {
            if (p.publishing_.fetch_sub(1) == 1 && !p.accepting_.load()) {
                std::lock_guard lock(p.publishing_mutex_);
                p.published_cv_.notify_all();
            }
        }
    } leave{*this};
    if (!accepting_.load()) {
        for (size_t i = 0; i < events.size(); ++i)
            out[i] = {events[i].event_id, Path::Refused, Reason::Stopping, "pipeline " + spec_.name + " is not running"};
        return out;
    }
    // One clock read for the batch: its events are accepted together.
    const int64_t accepted_us = now_us();
    std::vector<size_t> valid;
    for (size_t i = 0; i < events.size(); ++i) {
        prepare(events[i], accepted_us);
        if (events[i].topic.empty()) {
            out[i] = {{}, Path::Refused, Reason::Invalid,
                      "the event names no topic and pipeline " + spec_.name + " has no default topic"};
            continue;
        }
        if (const std::string* name = first_reserved_header(events[i])) {
            out[i] = {{}, Path::Refused, Reason::Invalid,
                      "header '" + *name + "' is reserved for the engine's own headers (" + kReservedHeaders + ")"};
            continue;
        }
        if (std::string problem = topic_name_problem(events[i].topic); !problem.empty()) {
            out[i] = {{}, Path::Refused, Reason::Invalid, std::move(problem)};
            continue;
        }
        if (!topic_allowed(spec_.topics, events[i].topic)) {
            out[i] = {{}, Path::Refused, Reason::Invalid,
                      "topic " + printable_topic(events[i].topic) + " is not one pipeline " + spec_.name +
                          " publishes to (its topics option)"};
            continue;
        }
        valid.push_back(i);
    }

    if (spec_.mode == config::Mode::OutboxFirst) {
        append(events, valid, Reason::Relayed, {}, out);
    } else {
        publish_direct(events, out);
    }
    // The events are done with: their ids move into the outcomes (left empty until here) rather
    // than being copied.
    for (size_t i = 0; i < events.size(); ++i) out[i].event_id = std::move(events[i].event_id);
    record(out, started);
    return out;
}

void Pipeline::publish_direct(std::vector<Event>& events, std::vector<Outcome>& out) {
    // A sink that says every broker is down opens the circuit before anyone waits on it.
    if (circuit_.closed()) {
        sw_health h{};
        if (sink_.health(h) == SW_OK && h.state == SW_HEALTH_DOWN) circuit_.sink_down();
    }
    const bool circuit_closed = circuit_.closed();

    // Split: keys already in the outbox (or all, with the circuit open) follow their backlog.
    std::vector<size_t> direct, spill;
    std::vector<Reason> spill_reason(events.size(), Reason::None);
    std::unordered_set<std::string> spilled_keys;  // keys spilled earlier in this batch
    for (size_t i = 0; i < events.size(); ++i) {
        if (out[i].reason == Reason::Invalid) continue;
        const Event& e = events[i];
        if (!circuit_closed) {
            spill.push_back(i);
            spill_reason[i] = Reason::CircuitOpen;
        } else if (e.key && (!seeded_.load() || sticky_.contains(*e.key) || spilled_keys.count(*e.key))) {
            spill.push_back(i);
            spill_reason[i] = Reason::StickyKey;
            spilled_keys.insert(*e.key);
        } else {
            direct.push_back(i);
        }
    }

    std::vector<std::string> direct_errors(events.size());
    if (!direct.empty()) {
        EventViews views(events, direct, spec_.name);
        std::vector<sw_result> results(direct.size());
        sw_status st;
        {
            auto use = sink_.use();
            auto scope = sink_.call("send");
            st = sink_.vt<sw_sink_vtable>().send(use.get(), views.data(), views.size(), results.data(),
                                                 spec_.direct_timeout_ms);
            note_fatal(use, st, results);
        }
        std::string call_error;
        if (st != SW_OK) call_error = sink_.describe(st);
        bool reset_circuit = true;  // a run of successes resets the failure count once
        for (size_t j = 0; j < direct.size(); ++j) {
            const size_t i = direct[j];
            const sw_result& r = results[j];
            const int status = st == SW_OK ? r.status : SW_RETRY;
            if (status == SW_OK) {
                out[i].path = Path::Direct;
                out[i].reason = Reason::None;
                if (reset_circuit) circuit_.direct_succeeded();
                reset_circuit = false;
                continue;
            }
            reset_circuit = true;
            std::string why = st != SW_OK ? call_error : std::string(r.message);
            if (status == SW_REJECT && !spec_.dead_letter_rejects) {
                out[i] = {{}, Path::Refused, Reason::Rejected, "Kafka rejected the event: " + why};
                log_->warn("event {} rejected by Kafka: {}", events[i].event_id, why);
                continue;
            }
            if (status != SW_REJECT) circuit_.direct_failed();
            direct_errors[i] = why;
            spill.push_back(i);
            spill_reason[i] = Reason::DirectFailed;
        }
    }
    if (spill.empty()) return;
    // One append, in accept order, so per key the outbox holds events as they came.
    std::sort(spill.begin(), spill.end());
    append(events, spill, Reason::None, direct_errors, out);
    for (size_t i : spill)
        if (out[i].path == Path::Outbox) {
            out[i].reason = spill_reason[i];
            if (spill_reason[i] == Reason::DirectFailed)
                log_->debug("event {} spilled to the outbox: {}", events[i].event_id, direct_errors[i]);
        }
}

void Pipeline::append(std::vector<Event>& events, const std::vector<size_t>& pick, Reason reason,
                      const std::vector<std::string>& direct_errors, std::vector<Outcome>& out) {
    if (pick.empty()) return;
    EventViews views(events, pick, spec_.name);
    std::vector<sw_result> results(pick.size());
    auto scope = store_.call("append");
    const sw_status st = store_.vt<sw_store_vtable>().append(store_.get(), views.data(), views.size(), results.data());
    if (st != SW_OK) {
        const std::string store_error = store_.describe(st);
        const Reason r = st == SW_FULL ? Reason::BacklogFull : Reason::Unavailable;
        for (size_t i : pick) {
            std::string msg = "outbox: " + store_error;
            if (!direct_errors.empty() && !direct_errors[i].empty()) msg = "Kafka: " + direct_errors[i] + "; " + msg;
            out[i] = {{}, Path::Refused, r, msg};
        }
        log_->warn("outbox refused {} event(s): {}", pick.size(), store_error);
        std::lock_guard lock(error_mutex_);
        last_error_ = "outbox: " + store_error;
        return;
    }
    for (size_t j = 0; j < pick.size(); ++j) {
        const size_t i = pick[j];
        out[i].path = Path::Outbox;
        out[i].reason = reason;
        if (!direct_errors.empty() && !direct_errors[i].empty()) out[i].message = direct_errors[i];
        if (spec_.mode == config::Mode::OutboxFirst) continue;  // every event goes this way: nothing to follow
        if (events[i].key && !(results[j].flags & SW_RESULT_DUPLICATE)) sticky_.add(*events[i].key);
        if (!events[i].key) sticky_.touch();
    }
    // A hint only: the event is already durable, and the relay also polls.
    auto bell_scope = notifier_.call("notify");
    const sw_status rung = notifier_.vt<sw_notifier_vtable>().notify(notifier_.get(), spec_.name.c_str());
    if (rung != SW_OK) {
        metrics_.add("doorbell_failures_total", labels_);
        log_->debug("doorbell not rung: {}", notifier_.describe(rung));
    }
}

}  // namespace spillway::pipeline
