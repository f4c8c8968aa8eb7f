#include "engine/observe/catalogue.hpp"

namespace spillway::observe {

const MetricFamily kEngineMetrics[] = {
    {"publish_total", "counter", "pipeline,path,reason", "Events answered by publish, by path (direct, outbox, refused) and reason"},
    {"publish_latency_seconds", "histogram", "pipeline,path", "Time from publish to durable (Kafka ack or outbox commit) or refusal"},
    {"direct_probe_seconds", "histogram", "pipeline",
     "coordination = shards: time the pending-key probe took (one store call per publish call with keyed events to send direct)"},
    {"direct_probe_failures_total", "counter", "pipeline",
     "coordination = shards: pending-key probes that failed; their calls' keyed events that would have gone direct were refused"},
    {"circuit_state", "gauge", "pipeline", "Direct-path circuit: 0 closed, 1 open, 2 half-open"},
    {"circuit_transitions_total", "counter", "pipeline,from,to", "Circuit state changes, by from and to"},
    {"outbox_pending", "gauge", "pipeline", "Rows waiting in the outbox, including leased ones"},
    {"outbox_dead", "gauge", "pipeline", "Dead letters in the outbox"},
    {"outbox_oldest_age_seconds", "gauge", "pipeline", "Age of the oldest pending outbox row"},
    {"outbox_delay_seconds", "histogram", "pipeline", "Time from accept to relay delivery for events that went through the outbox"},
    {"relay_published_total", "counter", "pipeline", "Outbox rows the relay delivered to Kafka"},
    {"relay_failures_total", "counter", "pipeline", "Outbox rows the relay could not deliver and will retry"},
    {"relay_claimed_ahead_total", "counter", "pipeline", "Batches the relay claimed while the one before was being sent (a drain)"},
    {"relay_held_back_total", "counter", "pipeline", "Outbox rows given back unsent because an earlier row of their key just failed"},
    {"relay_interval_seconds", "gauge", "pipeline", "The relay's current poll interval"},
    {"relay_wakeups_total", "counter", "pipeline,cause", "Relay wake-ups, by cause"},
    {"relay_paused", "gauge", "pipeline", "1 while the admin API has the relay paused (POST /v1/pipelines/{name}/pause), else 0"},
    {"dead_letters_total", "counter", "pipeline", "Rows moved to the dead letters"},
    {"doorbell_failures_total", "counter", "pipeline", "Doorbell rings that failed (the relay's poll still finds the rows)"},
    {"sink_rebuilds_total", "counter", "pipeline", "Times the sink was destroyed and created again after it reported FATAL"},
    {"http_requests_total", "counter", "route,code", "HTTP requests answered, by route (never the path) and status code"},
    {"http_connections", "gauge", "", "Open HTTP connections"},
    {"http_connections_refused_total", "counter", "how",
     "HTTP connections past http_max_connections: probe_only (one probe allowed) or closed (past twice the cap)"},
};
const size_t kEngineMetricCount = sizeof kEngineMetrics / sizeof kEngineMetrics[0];

void describe_engine_metrics(Metrics& metrics) {
    for (size_t i = 0; i < kEngineMetricCount; ++i) metrics.describe(kEngineMetrics[i].name, kEngineMetrics[i].help);
}

}  // namespace spillway::observe
