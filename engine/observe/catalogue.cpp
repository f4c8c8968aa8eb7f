#include "engine/observe/catalogue.hpp"

#include <stdexcept>

namespace spillway::observe {

const MetricFamily kEngineMetrics[] = {
    {"publish_total", "counter", "pipeline,path,reason,event_type",
     "Events answered by publish, by path (direct, outbox, refused) and reason; by event_type only when the pipeline sets metrics_event_types (its first N types, the rest as other)",
     "events", "kafka_publish_success_rate = rate(publish_total{path=\"direct\"}) / rate(publish_total); outbox_fallback_rate = rate(publish_total{path=\"outbox\",reason!=\"outbox-first\"}) / rate(publish_total); outbox_events_added_total = publish_total{path=\"outbox\"}"},
    {"publish_latency_seconds", "histogram", "pipeline,path",
     "Time from publish to durable (the sink's ack or the outbox commit) or refusal",
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
    {"outbox_pending", "gauge", "pipeline,component,scope",
     "Rows waiting in the outbox, including leased ones; a shards-mode store also reports its owned shards' rows (scope=owned, component)",
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
    {"relay_processing_seconds", "histogram", "pipeline",
     "Time from the relay's claim of a batch to the sink's reports on all of it (a drain's batches overlap)",
     "seconds", "outbox_relay_processing_seconds (declared, never observed)"},
    {"delivery_age_seconds", "histogram", "pipeline,path",
     "An event's age when the sink acknowledged it: from accept to ack, by path (direct, outbox)",
     "seconds", ""},
    {"relay_published_total", "counter", "pipeline",
     "Outbox rows the relay delivered to the sink",
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
     "Relay wake-ups, by cause: doorbell (rung), timer (the idle poll), backlog (the round after a full claim, or one the scheduler wants at once), probe (the open circuit's look at the sink)",
     "wake-ups", ""},
    {"doorbell_wake_seconds", "histogram", "pipeline,notifier",
     "Time from this engine's doorbell ring (the first since the relay's last claim) to the claim it woke, by notifier (its instance id); rings from other engines or applications are not timed",
     "seconds", "the wake-up latency the original's docs promised (it emitted none)"},
    {"relay_paused", "gauge", "pipeline",
     "1 while the admin API has the relay paused (POST /v1/pipelines/{name}/pause), else 0",
     "boolean (0, 1)", ""},
    {"dead_letters_total", "counter", "pipeline",
     "Rows moved to the dead letters",
     "rows", "outbox_events_failed_total"},
    {"transform_dropped_total", "counter", "pipeline,transform",
     "Events a transform dropped (settled as delivered, never sent), by transform (its instance id)",
     "events", ""},
    {"transform_rejected_total", "counter", "pipeline,transform",
     "Events a transform rejected (refused, or dead-lettered, with its reason), by transform",
     "events", ""},
    {"doorbell_failures_total", "counter", "pipeline",
     "Doorbell rings that failed (the relay's poll still finds the rows)",
     "rings", ""},
    {"sink_rebuilds_total", "counter", "pipeline",
     "Times the sink was destroyed and created again after it reported FATAL",
     "rebuilds", ""},
    {"sink_trials_total", "counter", "pipeline",
     "Trial sends of one outbox event to a sink whose health said DOWN (the health contract: the answer decides)",
     "sends", ""},
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

const MetricFamily kPluginMetrics[] = {
    {"kafka_delivery_total", "counter", "component,result", "Records the kafka sink had delivered, by result (ok, retry, reject, fatal)",
     "records", "plugins/kafka"},
    {"kafka_delivery_deadline_exceeded_total", "counter", "component",
     "Records whose delivery report had not come within the pipeline's direct_timeout (answered retry; the outbox takes them)",
     "records", "plugins/kafka"},
    {"kafka_delivery_outage_unreported_total", "counter", "component",
     "Records answered retry at once because librdkafka saw every broker down, before their own reports came", "records",
     "plugins/kafka"},
    {"kafka_late_delivery_total", "counter", "component,result",
     "Delivery reports that came after their record was already answered (ok: Kafka has it after all, a duplicate to be)",
     "reports", "plugins/kafka"},
    {"kafka_unknown_topic_total", "counter", "component", "Records refused because Kafka does not know their topic",
     "records", "plugins/kafka"},
    {"kafka_client_errors_total", "counter", "component,error", "librdkafka client errors, by error name", "errors",
     "plugins/kafka"},
    {"kafka_brokers_up", "gauge", "component", "Brokers librdkafka is connected to (its statistics)", "brokers",
     "plugins/kafka"},
    {"kafka_queue_messages", "gauge", "component", "Records in librdkafka's queue, not yet acknowledged", "records",
     "plugins/kafka"},
    {"kafka_topic_handles", "gauge", "component", "Topic handles the sink keeps (capped by its topic cache)", "handles",
     "plugins/kafka"},
    {"kafka_client_topics", "gauge", "component", "Topics librdkafka's client knows (its statistics)", "topics",
     "plugins/kafka"},
    {"poll_interval_seconds", "gauge", "component", "The adaptive scheduler's current level of its ladder", "seconds",
     "plugins/adaptive"},
    {"scheduler_transitions_total", "counter", "component,from,to", "Changes of the adaptive scheduler's level", "changes",
     "plugins/adaptive"},
    {"notifier_outages_total", "counter", "component", "Times a doorbell (redis, pgnotify) lost its server", "outages",
     "plugins/doorbell-common"},
    {"relay_fenced_total", "counter", "component,pipeline,op",
     "coordination = shards: claims and settlements the store refused because the shard's lease had run out or moved (op)",
     "rows", "plugins/outbox-common"},
    {"relay_claim_skips_total", "counter", "component,pipeline,part",
     "Backlog claims that did not read again the ids between the two batches in flight (part=between) or below them "
     "(part=below): the claims before saw every row there can be (PostgreSQL's id horizon). None during a drain: "
     "the horizon is off, the store's log says why",
     "claims", "plugins/outbox-common"},
    {"coord_member_up", "gauge", "component,pipeline", "coordination = shards: 1 while this engine's member row is live",
     "boolean (0, 1)", "plugins/postgres"},
    {"coord_members", "gauge", "component,pipeline", "coordination = shards: live members of the pipeline", "members",
     "plugins/postgres"},
    {"coord_shards_owned", "gauge", "component,pipeline", "coordination = shards: shards this engine owns", "shards",
     "plugins/postgres"},
    {"coord_lease_remaining_seconds", "gauge", "component,pipeline",
     "coordination = shards: time left on the soonest-ending lease this engine holds", "seconds", "plugins/postgres"},
    {"coord_heartbeat_seconds", "histogram", "component,pipeline", "coordination = shards: how long a heartbeat took",
     "seconds", "plugins/postgres"},
    {"coord_heartbeat_failures_total", "counter", "component,pipeline", "coordination = shards: heartbeats that failed",
     "heartbeats", "plugins/postgres"},
    {"coord_dead_members_total", "counter", "component,pipeline",
     "coordination = shards: members found dead (their session gone or their row expired)", "members", "plugins/postgres"},
    {"coord_shard_acquired_total", "counter", "component,pipeline,reason",
     "coordination = shards: shards taken, by reason (free, expired)", "shards", "plugins/postgres"},
    {"coord_shard_released_total", "counter", "component,pipeline,reason",
     "coordination = shards: shards handed over, by reason (rebalance, shutdown)", "shards", "plugins/postgres"},
    {"coord_shard_lost_total", "counter", "component,pipeline",
     "coordination = shards: shards this engine lost without handing them over (its lease ran out or was taken), counted when it learns: at a renewal, or on reconnecting after its session broke (those another member took meanwhile)", "shards",
     "plugins/postgres"},
    {"coord_handoff_seconds", "histogram", "component,pipeline",
     "coordination = shards: time from a shard's release or expiry to its new owner taking it", "seconds",
     "plugins/postgres"},
};
const size_t kPluginMetricCount = sizeof kPluginMetrics / sizeof kPluginMetrics[0];

namespace {
std::string cell(std::string s) {
    for (size_t at = s.find('|'); at != std::string::npos; at = s.find('|', at + 2)) s.replace(at, 1, "\\|");
    return s;
}

std::string table(const MetricFamily* families, size_t n, const char* last_column) {
    std::string md = "| family | type | labels | unit | meaning | " + std::string(last_column) + " |\n|---|---|---|---|---|---|\n";
    for (size_t i = 0; i < n; ++i) {
        const MetricFamily& f = families[i];
        std::string labels = f.labels;
        for (size_t at = labels.find(','); at != std::string::npos; at = labels.find(',', at)) labels.replace(at, 1, ", "), at += 2;
        md += "| `spillway_" + std::string(f.name) + "` | " + f.type + " | " + labels + " | " + cell(f.unit) + " | " +
              cell(f.help) + " | " + (f.was[0] ? "`" + cell(f.was) + "`" : "") + " |\n";
    }
    return md;
}

std::string with_table(const std::string& text, const std::string& which, const std::string& md) {
    const std::string begin = "<!-- metrics:" + which + " ", end = "<!-- /metrics:" + which + " -->";
    const size_t b = text.find(begin);
    const size_t body = b == std::string::npos ? b : text.find("-->\n", b);
    const size_t e = text.find(end);
    if (b == std::string::npos || body == std::string::npos || e == std::string::npos || e < body)
        throw std::runtime_error("no '" + begin + "...-->' ... '" + end + "' block to fill");
    return text.substr(0, body + 4) + md + text.substr(e);
}
}  // namespace

std::string with_metric_table(const std::string& text) {
    std::string out = with_table(text, "engine", table(kEngineMetrics, kEngineMetricCount, "replaces (original system)"));
    return with_table(out, "plugins", table(kPluginMetrics, kPluginMetricCount, "emitted by"));
}

void describe_engine_metrics(Metrics& metrics) {
    for (size_t i = 0; i < kEngineMetricCount; ++i) metrics.describe(kEngineMetrics[i].name, kEngineMetrics[i].help);
    for (size_t i = 0; i < kPluginMetricCount; ++i) metrics.describe(kPluginMetrics[i].name, kPluginMetrics[i].help);
}

}  // namespace spillway::observe
