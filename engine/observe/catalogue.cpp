#include "engine/observe/catalogue.hpp"

#include <stdexcept>

namespace spillway::observe {

const MetricFamily kEngineMetrics[] = {
    {"publish_total", "counter", "pipeline,path,reason",
     "Events answered by publish, by path (direct, outbox, refused) and reason",
     "events", "kafka_publish_success_rate = rate(publish_total{path=\"direct\"}) / rate(publish_total); outbox_fallback_rate = rate(publish_total{path=\"outbox\",reason!=\"outbox-first\"}) / rate(publish_total); outbox_events_added_total = publish_total{path=\"outbox\"}"},
    {"publish_latency_seconds", "histogram", "pipeline,path",
     "Time from publish to durable (Kafka ack or outbox commit) or refusal",
     "seconds", ""},
    {"direct_probe_seconds", "histogram", "pipeline",
     "coordination = shards: time the pending-key probe took (one store call per publish call with keyed events to send direct)",
     "seconds", ""},
    {"direct_probe_failures_total", "counter", "pipeline",
     "coordination = shards: pending-key probes that failed; their calls' keyed events that would have gone direct were refused",
     "probes", ""},
    {"circuit_state", "gauge", "pipeline",
     "Direct-path circuit: 0 closed, 1 open, 2 half-open",
     "state (0 closed, 1 open, 2 half-open)", ""},
    {"circuit_transitions_total", "counter", "pipeline,from,to",
     "Circuit state changes, by from and to",
     "transitions", ""},
    {"outbox_pending", "gauge", "pipeline",
     "Rows waiting in the outbox, including leased ones",
     "rows", "outbox_queue_depth (which held the last fetched batch's size, never the depth)"},
    {"outbox_dead", "gauge", "pipeline",
     "Dead letters in the outbox",
     "rows", ""},
    {"outbox_oldest_age_seconds", "gauge", "pipeline",
     "Age of the oldest pending outbox row",
     "seconds", ""},
    {"outbox_delay_seconds", "histogram", "pipeline",
     "Time from accept to relay delivery for events that went through the outbox",
     "seconds", "outbox_processing_delay_seconds (named in the docs only), outbox_event_age_seconds (declared, never observed)"},
    {"relay_published_total", "counter", "pipeline",
     "Outbox rows the relay delivered to Kafka",
     "rows", "outbox_events_published_total"},
    {"relay_failures_total", "counter", "pipeline",
     "Outbox rows the relay could not deliver and will retry",
     "rows", "outbox_relay_errors_total"},
    {"relay_claimed_ahead_total", "counter", "pipeline",
     "Batches the relay claimed while the one before was being sent (a drain)",
     "batches", ""},
    {"relay_held_back_total", "counter", "pipeline",
     "Outbox rows given back unsent because an earlier row of their key just failed",
     "rows", ""},
    {"relay_interval_seconds", "gauge", "pipeline",
     "The relay's current poll interval",
     "seconds", ""},
    {"relay_wakeups_total", "counter", "pipeline,cause",
     "Relay wake-ups, by cause",
     "wake-ups", ""},
    {"relay_paused", "gauge", "pipeline",
     "1 while the admin API has the relay paused (POST /v1/pipelines/{name}/pause), else 0",
     "boolean (0, 1)", ""},
    {"dead_letters_total", "counter", "pipeline",
     "Rows moved to the dead letters",
     "rows", "outbox_events_failed_total"},
    {"doorbell_failures_total", "counter", "pipeline",
     "Doorbell rings that failed (the relay's poll still finds the rows)",
     "rings", ""},
    {"sink_rebuilds_total", "counter", "pipeline",
     "Times the sink was destroyed and created again after it reported FATAL",
     "rebuilds", ""},
    {"http_requests_total", "counter", "route,code",
     "HTTP requests answered, by route (never the path) and status code",
     "requests", ""},
    {"http_connections", "gauge", "",
     "Open HTTP connections",
     "connections", ""},
    {"http_connections_refused_total", "counter", "how",
     "HTTP connections past http_max_connections: probe_only (one probe allowed) or closed (past twice the cap)",
     "connections", ""},
};
const size_t kEngineMetricCount = sizeof kEngineMetrics / sizeof kEngineMetrics[0];

std::string with_metric_table(const std::string& text) {
    const std::string begin = "<!-- metrics:engine ", end = "<!-- /metrics:engine -->";
    const size_t b = text.find(begin);
    const size_t body = b == std::string::npos ? b : text.find("-->\n", b);
    const size_t e = text.find(end);
    if (b == std::string::npos || body == std::string::npos || e == std::string::npos || e < body)
        throw std::runtime_error("no '" + begin + "...-->' ... '" + end + "' block to fill");
    const auto cell = [](std::string s) {
        for (size_t at = s.find('|'); at != std::string::npos; at = s.find('|', at + 2)) s.replace(at, 1, "\\|");
        return s;
    };
    std::string md = "| family | type | labels | unit | meaning | replaces (original system) |\n|---|---|---|---|---|---|\n";
    for (size_t i = 0; i < kEngineMetricCount; ++i) {
        const MetricFamily& f = kEngineMetrics[i];
        std::string labels = f.labels;
        for (size_t at = labels.find(','); at != std::string::npos; at = labels.find(',', at)) labels.replace(at, 1, ", "), at += 2;
        md += "| `spillway_" + std::string(f.name) + "` | " + f.type + " | " + (labels.empty() ? "" : labels) + " | " +
              cell(f.unit) + " | " + cell(f.help) + " | " + (f.was[0] ? "`" + cell(f.was) + "`" : "") + " |\n";
    }
    return text.substr(0, body + 4) + md + text.substr(e);
}

void describe_engine_metrics(Metrics& metrics) {
    for (size_t i = 0; i < kEngineMetricCount; ++i) metrics.describe(kEngineMetrics[i].name, kEngineMetrics[i].help);
}

}  // namespace spillway::observe
