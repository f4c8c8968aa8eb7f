// A caller hears "accepted" only for what Kafka acknowledged or the store committed.
#include "engine/pipeline/publisher.hpp"
#include "engine/observe/clock.hpp"
#include "engine/observe/log.hpp"
#include "engine/pipeline/topic_name.hpp"
#include "engine/pipeline/trace_context.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace spillway::pipeline {

Publisher::Publisher(Shared& shared, SinkSupervisor& sink, plugin::StorePort store, plugin::NotifierPort doorbell)
    : s_(shared), sink_(sink), store_(store), doorbell_(doorbell) {}

void Publisher::close(int64_t timeout_ms) {
    accepting_ = false;
    std::unique_lock lock(publishing_mutex_);
    if (!published_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return publishing_.load() == 0; }))
        s_.log->warn("pipeline {}: {} publish call(s) still running at the shutdown deadline", s_.spec.name,
                     publishing_.load());
}

void Publisher::prepare(Event& e, int64_t accepted_us) {
    if (e.event_id.empty()) e.event_id = uuid_v7(static_cast<uint64_t>(accepted_us / 1000));
    if (e.topic.empty()) e.topic = s_.spec.topic;
    if (e.created_at_us == 0) e.created_at_us = accepted_us;
}

// Counts and latencies per (path, reason) group rather than per event: a batch of 1,000 spent
// more in building label sets than librdkafka spent producing it.
void record_publish(Shared& s, const std::vector<Event>& events, const std::vector<Outcome>& outcomes,
                    int64_t started_us) {
    const double seconds = static_cast<double>(observe::monotonic_us() - started_us) / 1e6;
    // (path, reason[, event_type]) -> events. A run of like outcomes (a batch that all went direct
    // is one) costs one lookup: a lookup per event was most of this function's time.
    std::map<std::tuple<Path, Reason, std::string>, uint64_t> groups;
    const bool typed = s.event_types.on();
    const auto alike = [&](size_t a, size_t b) {
        return outcomes[a].path == outcomes[b].path && outcomes[a].reason == outcomes[b].reason &&
               (!typed || events[a].event_type == events[b].event_type);
    };
    for (size_t i = 0; i < outcomes.size();) {
        const size_t start = i;
        while (++i < outcomes.size() && alike(start, i)) {
        }
        const Outcome& o = outcomes[start];
        groups[{o.path, o.reason, typed ? s.event_types.value(events[start].event_type, o.accepted()) : ""}] += i - start;
    }
    // Asked once per call: building a line's text and fields per event, only for spdlog to drop
    // it, cost a tenth of a batched call's CPU.
    if (s.log->should_log(spdlog::level::debug))
        for (const Outcome& o : outcomes)
            observe::log(*s.log, spdlog::level::debug, "event " + o.event_id + " " + path_name(o.path),
                         {{"pipeline", s.spec.name}, {"event_id", o.event_id}, {"path", path_name(o.path)},
                          {"reason", reason_name(o.reason)}, {"error", o.message}});
    std::map<Path, uint64_t> per_path;
    for (const auto& [group, n] : groups) {
        const auto& [path, reason, type] = group;
        observe::Labels l = s.labels;
        l.emplace_back("path", path_name(path));
        l.emplace_back("reason", reason_name(reason));
        if (s.event_types.on()) l.emplace_back("event_type", type);
        s.metrics.add("publish_total", l, static_cast<double>(n));
        per_path[path] += n;
    }
    for (const auto& [path, n] : per_path) {
        observe::Labels lat = s.labels;
        lat.emplace_back("path", path_name(path));
        s.metrics.observe("publish_latency_seconds", lat, seconds, n);
        // A direct event's age at Kafka's ack is its publish latency; the relay observes the
        // outbox's (delivery_age_seconds{path="outbox"}).
        if (path == Path::Direct) s.metrics.observe("delivery_age_seconds", lat, seconds, n);
        if (path == Path::Direct) s.n_direct += n;
        else if (path == Path::Outbox) s.n_outbox += n;
        else s.n_refused += n;
    }
}

std::vector<Outcome> Publisher::publish(std::vector<Event> events) {
    const int64_t started = observe::monotonic_us();
    std::vector<Outcome> out(events.size());
    // Counted before accepting_ is read, so stop() either sees this call or this call sees the
    // stop: stop() waits for counted calls before the sink and store go away.
    publishing_.fetch_add(1);
    struct Leave {
        Publisher& p;
        ~Leave() {
            if (p.publishing_.fetch_sub(1) == 1 && !p.accepting_.load()) {
                std::lock_guard lock(p.publishing_mutex_);
                p.published_cv_.notify_all();
            }
        }
    } leave{*this};
    if (!accepting_.load()) {
        for (size_t i = 0; i < events.size(); ++i)
            out[i] = {events[i].event_id, Path::Refused, Reason::Stopping, "pipeline " + s_.spec.name + " is not running"};
        return out;
    }
    // One clock read for the batch: its events are accepted together.
    const int64_t accepted_us = observe::unix_us();
    std::vector<size_t> valid;
    for (size_t i = 0; i < events.size(); ++i) {
        prepare(events[i], accepted_us);
        if (!refuse_invalid(events[i], out[i])) valid.push_back(i);
    }

    if (s_.spec.mode == config::Mode::OutboxFirst) {
        append(events, valid, std::vector<Reason>(events.size(), Reason::Relayed), {}, out);
    } else {
        publish_direct(events, out);
    }
    // The events are done with: their ids move into the outcomes (left empty until here) rather
    // than being copied.
    for (size_t i = 0; i < events.size(); ++i) out[i].event_id = std::move(events[i].event_id);
    record_publish(s_, events, out, started);
    return out;
}

bool Publisher::refuse_invalid(const Event& e, Outcome& out) const {
    if (e.topic.empty()) {
        out = {{}, Path::Refused, Reason::Invalid,
                  "the event names no topic and pipeline " + s_.spec.name + " has no default topic"};
        return true;
    }
    if (const std::string* name = first_reserved_header(e)) {
        out = {{}, Path::Refused, Reason::Invalid,
                  "header '" + *name + "' is reserved for the engine's own headers (" + kReservedHeaders + ")"};
        return true;
    }
    // The HTTP ingress checked these already (400 naming the field); an in-process caller's are
    // checked here.
    if (!e.traceparent.empty()) {
        if (std::string problem = traceparent_problem(e.traceparent); !problem.empty()) {
            out = {{}, Path::Refused, Reason::Invalid, "traceparent: " + problem};
            return true;
        }
    }
    if (!e.tracestate.empty()) {
        std::string problem = e.traceparent.empty() ? "sent without a traceparent" : tracestate_problem(e.tracestate);
        if (!problem.empty()) {
            out = {{}, Path::Refused, Reason::Invalid, "tracestate: " + problem};
            return true;
        }
    }
    if (std::string problem = topic_name_problem(e.topic); !problem.empty()) {
        out = {{}, Path::Refused, Reason::Invalid, std::move(problem)};
        return true;
    }
    if (!topic_allowed(s_.spec.topics, e.topic)) {
        out = {{}, Path::Refused, Reason::Invalid,
                  "topic " + printable_topic(e.topic) + " is not one pipeline " + s_.spec.name +
                      " publishes to (its topics option)"};
        return true;
    }
    return false;
}

void Publisher::publish_direct(std::vector<Event>& events, std::vector<Outcome>& out) {
    // A sink that says every broker is down opens the circuit before anyone waits on it.
    if (s_.circuit.closed()) sink_.look();
    const bool circuit_closed = s_.circuit.closed();

    // Split: keys already in the outbox (or all, with the circuit open) follow their backlog.
    // With coordination = "shards" the outbox itself says which keys wait there (the probe below):
    // this engine's own count of a key does not come down when another engine relays its rows, so
    // it would keep the key on the outbox path here long after its backlog left.
    const bool shards = s_.spec.coordination == config::Coordination::Shards;
    std::vector<size_t> direct, spill;
    std::vector<Reason> spill_reason(events.size(), Reason::None);
    std::unordered_set<std::string> spilled_keys;  // keys spilled earlier in this batch
    for (size_t i = 0; i < events.size(); ++i) {
        if (out[i].reason == Reason::Invalid) continue;
        const Event& e = events[i];
        if (!circuit_closed) {
            spill.push_back(i);
            spill_reason[i] = Reason::CircuitOpen;
        } else if (e.key && !shards && (!s_.seeded.load() || s_.sticky.contains(*e.key) || spilled_keys.count(*e.key))) {
            spill.push_back(i);
            spill_reason[i] = Reason::StickyKey;
            spilled_keys.insert(*e.key);
        } else {
            direct.push_back(i);
        }
    }
    if (shards && !direct.empty()) probe_pending_keys(events, direct, spill, spill_reason, out);

    std::vector<std::string> direct_errors(events.size());
    if (!direct.empty()) {
        EventViews views(events, direct, s_.spec.name);
        std::vector<sw_result> results(direct.size());
        sink_.send({views.data(), views.size()}, results, s_.spec.direct_timeout_ms);
        bool reset_circuit = true;  // a run of successes resets the failure count once
        for (size_t j = 0; j < direct.size(); ++j) {
            const size_t i = direct[j];
            const sw_result& r = results[j];
            const int status = r.status;
            if (status == SW_OK) {
                out[i].path = Path::Direct;
                out[i].reason = Reason::None;
                if (reset_circuit) s_.circuit.direct_succeeded();
                reset_circuit = false;
                continue;
            }
            reset_circuit = true;
            std::string why = r.message;
            if (status == SW_REJECT && !s_.spec.dead_letter_rejects) {
                // A transform's reason names the transform already; the sink's gets the sink's id.
                const bool by_transform = why.rfind("transform.", 0) == 0;
                out[i] = {{}, Path::Refused, Reason::Rejected,
                          by_transform ? why : sink_.port().id() + " rejected the event: " + why};
                rejected_log_.log(*s_.log, spdlog::level::warn, "event " + events[i].event_id + " rejected by " + (by_transform ? why.substr(0, why.find(':')) : sink_.port().id()),
                             {{"pipeline", s_.spec.name}, {"event_id", events[i].event_id}, {"topic", events[i].topic},
                              {"path", "refused"}, {"reason", "rejected"}, {"error", why}});
                continue;
            }
            if (status != SW_REJECT) s_.circuit.direct_failed();
            direct_errors[i] = why;
            spill.push_back(i);
            spill_reason[i] = Reason::DirectFailed;
        }
    }
    if (spill.empty()) return;
    // One append, in accept order, so per key the outbox holds events as they came.
    std::sort(spill.begin(), spill.end());
    append(events, spill, spill_reason, direct_errors, out);
    if (!s_.log->should_log(spdlog::level::debug)) return;
    for (size_t i : spill)
        if (out[i].path == Path::Outbox && spill_reason[i] == Reason::DirectFailed)
            observe::log(*s_.log, spdlog::level::debug, "event " + events[i].event_id + " spilled to the outbox",
                         {{"pipeline", s_.spec.name}, {"event_id", events[i].event_id}, {"topic", events[i].topic},
                          {"path", "outbox"}, {"reason", reason_name(Reason::DirectFailed)}, {"error", direct_errors[i]}});
}

// Another engine may have spilled an earlier event of a key this one has never seen: its own sticky
// keys cannot tell, the outbox can (SCALE-OUT.md §3.7). The probe reads committed rows after this
// call began, so an earlier event of the key that was accepted (its call ended) is either in Kafka
// or a pending row the probe finds. A key found spills behind its rows; so do its other events of
// this call, which keeps them in their order.
void Publisher::probe_pending_keys(const std::vector<Event>& events, std::vector<size_t>& direct,
                                   std::vector<size_t>& spill, std::vector<Reason>& spill_reason,
                                   std::vector<Outcome>& out) {
    std::vector<sw_bytes> keys;
    std::unordered_map<std::string_view, size_t> key_index;  // key -> its place in `keys`
    for (size_t i : direct) {
        if (!events[i].key) continue;
        const std::string& k = *events[i].key;
        if (key_index.try_emplace(k, keys.size()).second) keys.push_back(sw_bytes{k.data(), k.size()});
    }
    if (keys.empty()) return;
    std::vector<uint8_t> found(keys.size(), 0);
    const int64_t started = observe::monotonic_us();
    const sw_status st = store_.has_pending_among() ? store_.pending_among(s_.spec.name, keys, found) : SW_UNSUPPORTED;
    s_.metrics.observe("direct_probe_seconds", s_.labels,
                       static_cast<double>(observe::monotonic_us() - started) / 1e6);
    std::vector<size_t> still_direct;
    still_direct.reserve(direct.size());
    if (st != SW_OK) {
        s_.metrics.add("direct_probe_failures_total", s_.labels);
        const std::string why = store_.has_pending_among() ? store_.describe(st) : "the store cannot answer it (no pending_among)";
        const std::string message = store_.id() + " could not tell whether earlier events of this key wait in "
                                    "the outbox (" + why + "), so sending it to " + sink_.port().id() +
                                    " now might overtake them: refused";
        for (size_t i : direct) {
            if (events[i].key) out[i] = {{}, Path::Refused, Reason::Unavailable, message};
            else still_direct.push_back(i);
        }
        s_.log->warn("pipeline {}: {} keyed event(s) refused: the pending-key probe failed: {}", s_.spec.name,
                     direct.size() - still_direct.size(), why);
        s_.set_last_error("outbox: pending-key probe: " + why);
    } else {
        for (size_t i : direct) {
            if (events[i].key && found[key_index.at(*events[i].key)]) {
                spill.push_back(i);
                spill_reason[i] = Reason::StickyDb;
            } else {
                still_direct.push_back(i);
            }
        }
    }
    direct = std::move(still_direct);
}

void Publisher::append(std::vector<Event>& events, const std::vector<size_t>& pick, const std::vector<Reason>& reasons,
                       const std::vector<std::string>& direct_errors, std::vector<Outcome>& out) {
    if (pick.empty()) return;
    EventViews views(events, pick, s_.spec.name);
    std::vector<sw_result> results(pick.size());
    const sw_status st = store_.append({views.data(), views.size()}, results);
    if (st != SW_OK) {
        const std::string store_error = store_.describe(st);
        const Reason r = st == SW_FULL ? Reason::BacklogFull : Reason::Unavailable;
        for (size_t i : pick) {
            std::string msg = "outbox: " + store_error;
            if (!direct_errors.empty() && !direct_errors[i].empty()) msg = sink_.port().id() + ": " + direct_errors[i] + "; " + msg;
            out[i] = {{}, Path::Refused, r, msg};
        }
        s_.log->warn("outbox refused {} event(s): {}", pick.size(), store_error);
        s_.set_last_error("outbox: " + store_error);
        return;
    }
    for (size_t j = 0; j < pick.size(); ++j) {
        const size_t i = pick[j];
        out[i].path = Path::Outbox;
        out[i].reason = reasons[i];
        if (!direct_errors.empty() && !direct_errors[i].empty()) out[i].message = direct_errors[i];
        if (s_.spec.mode == config::Mode::OutboxFirst) continue;  // every event goes this way: nothing to follow
        if (events[i].key && !(results[j].flags & SW_RESULT_DUPLICATE)) s_.sticky.add(*events[i].key);
        if (!events[i].key) s_.sticky.touch();
    }
    // A hint only: the event is already durable, and the relay also polls.
    s_.mark_ring();
    if (const sw_status rung = doorbell_.notify(s_.spec.name); rung != SW_OK) {
        s_.metrics.add("doorbell_failures_total", s_.labels);
        s_.log->debug("doorbell not rung: {}", doorbell_.describe(rung));
    }
}

}  // namespace spillway::pipeline
