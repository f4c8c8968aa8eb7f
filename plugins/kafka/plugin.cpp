// The kafka sink plugin's descriptor: the export (its own options are producer_config.hpp's kOptions).
#include "kafka_sink.hpp"

using spillway::plugins::kafka::KafkaSink;

SW_EXPORT_SINK(KafkaSink, "kafka", "1.0.0",
               "Kafka sink on librdkafka: an idempotent producer (enable.idempotence=true, acks=all, both "
               "enforced; transactional.id refused). Every other key of the table is a librdkafka property passed through as is and "
               "validated by librdkafka (quote dotted keys: \"linger.ms\" = 5). Plugin defaults: linger.ms=0, "
               "message.timeout.ms=2000 (a pipeline's default direct_timeout), statistics.interval.ms=1000 "
               "(broker health). An event is OK only from its delivery report; send waits at most its timeout, "
               "and an event without a report by then, or when all brokers go down while it waits, is RETRY "
               "flagged possibly-delivered (librdkafka may still deliver it until message.timeout.ms; keep "
               "message.timeout.ms <= the pipeline's direct_timeout, which validate checks). "
               "Records carry the key, the payload and the headers event_id, event_type, correlation_id "
               "(when set), then the user's headers, and as timestamp the time the engine accepted the event "
               "(option timestamp; \"sent\" leaves it to librdkafka). A topic is checked on first sight: one the cluster does not "
               "have (UNKNOWN_TOPIC_OR_PART) is REJECT at once, not a timeout.",
               spillway::plugins::kafka::kOptions, SW_PLUGIN_THREAD_SAFE | SW_PLUGIN_OPEN_OPTIONS)
