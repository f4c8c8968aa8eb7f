// A pipeline's lifecycle and what it reports; publishing is in publisher.cpp, the relay in relay.cpp.
#include "engine/pipeline/pipeline.hpp"

#include <cstddef>

#include "engine/observe/log.hpp"

namespace spillway::pipeline {

Pipeline::Pipeline(const config::Pipeline& spec, plugin::Instance& sink, plugin::Instance& store,
                   plugin::Instance& notifier, plugin::Instance& scheduler, observe::Metrics& metrics)
    : spec_(spec),
      sink_(sink),
      store_(store),
      notifier_(notifier),
      scheduler_(scheduler),
      metrics_(metrics),
      log_(observe::logger("pipeline." + spec.name)),
      labels_{{"pipeline", spec.name}},
      circuit_(spec.circuit_threshold, [this](Circuit::State from, Circuit::State to, const char* why) {
          log_->info("circuit {} -> {} ({})", Circuit::name(from), Circuit::name(to), why);
          observe::Labels l = labels_;
          l.emplace_back("from", Circuit::name(from));
          l.emplace_back("to", Circuit::name(to));
          metrics_.add("circuit_transitions_total", l);
          metrics_.set("circuit_state", labels_, static_cast<double>(to));
      }) {
    metrics_.set("circuit_state", labels_, 0);
}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() {
    seed_sticky_keys();
    stopping_ = false;
    // Claiming ahead calls the store from two threads at once and the sink beside it.
    overlap_ = spec_.claim_ahead && store_.has_slot(offsetof(sw_store_vtable, claim_next)) &&
               store_.binding().library->thread_safe() && sink_.binding().library->thread_safe();
    next_limit_ = last_limit_ = static_cast<size_t>(spec_.batch_size);
    relay_ = std::thread([this] { relay_loop(); });
    accepting_ = true;
    log_->info("pipeline {} running ({}, sink {}, store {}, doorbell {}, scheduler {})", spec_.name,
               spec_.mode == config::Mode::DirectFirst ? "direct-first" : "outbox-first", sink_.id(), store_.id(),
               notifier_.id(), scheduler_.id());
}

void Pipeline::wake() {
    auto scope = notifier_.call("notify");
    notifier_.vt<sw_notifier_vtable>().notify(notifier_.get(), spec_.name.c_str());
}

void Pipeline::stop() {
    if (!relay_.joinable()) return;
    accepting_ = false;
    {
        // Publishes already under way finish (they end accepted or refused) before the sink and
        // the store can be stopped under them.
        std::unique_lock lock(publishing_mutex_);
        if (!published_cv_.wait_for(lock, std::chrono::milliseconds(spec_.shutdown_timeout_ms),
                                    [&] { return publishing_.load() == 0; }))
            log_->warn("pipeline {}: {} publish call(s) still running at the shutdown deadline", spec_.name,
                       publishing_.load());
    }
    stopping_ = true;
    {
        auto scope = notifier_.call("interrupt");
        notifier_.vt<sw_notifier_vtable>().interrupt(notifier_.get());
    }
    relay_.join();  // the relay finishes (settles or gives back) the batch it holds
    auto use = sink_.use();
    auto scope = sink_.call("flush");
    const sw_status flushed = sink_.vt<sw_sink_vtable>().flush(use.get(), spec_.shutdown_timeout_ms);
    if (flushed != SW_OK) log_->warn("flushing the sink: {}", sink_.describe(flushed));
    log_->info("pipeline {} stopped", spec_.name);
}

Status Pipeline::status() {
    Status s;
    s.name = spec_.name;
    s.mode = spec_.mode == config::Mode::DirectFirst ? "direct-first" : "outbox-first";
    s.circuit = Circuit::name(circuit_.state());
    sw_store_stats stats{};
    stats.struct_size = sizeof stats;
    auto scope = store_.call("stats");
    if (store_.vt<sw_store_vtable>().stats(store_.get(), spec_.name.c_str(), &stats) == SW_OK) {
        s.pending = stats.pending;
        s.leased = stats.leased;
        s.dead = stats.dead;
        s.oldest_pending_age_ms = stats.oldest_pending_age_ms;
    } else {
        (void)store_.host().take_error();
    }
    s.poll_interval_ms = poll_interval_ms_;
    s.direct = n_direct_;
    s.outbox = n_outbox_;
    s.refused = n_refused_;
    s.relayed = n_relayed_;
    s.dead_lettered = n_dead_;
    s.sticky_keys = sticky_.size();
    std::lock_guard lock(error_mutex_);
    s.last_error = last_error_;
    return s;
}

}  // namespace spillway::pipeline
