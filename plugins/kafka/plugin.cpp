// The kafka sink plugin's descriptor: its own options and the export.
#include "kafka_sink.hpp"

namespace {

using spillway::plugins::kafka::KafkaSink;

const sw_option kOptions[] = {
    {"bootstrap.servers", SW_OPT_STRING, 0, "embedded",
     "Kafka brokers, \"host:port,host:port\". \"embedded\" starts librdkafka's in-process mock cluster "
     "(quickstart and demos; refused in the production environment) and logs its address for kcat."},
    {"embedded.brokers", SW_OPT_INT, 0, "1",
     "Number of brokers of the embedded mock cluster (1-16); only with bootstrap.servers = \"embedded\"."},
    {"max.topic.handles", SW_OPT_INT, 0, "1000",
     "Topic handles the sink keeps (1-1000000), least recently used dropped first: clients may name a topic per "
     "event, so the names seen are theirs to choose. A pipeline publishing to more topics than this still works, "
     "with one metadata round trip each time a dropped topic comes back."},
};

}  // namespace

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
               "(when set), then the user's headers. A topic is checked on first sight: one the cluster does not "
               "have (UNKNOWN_TOPIC_OR_PART) is REJECT at once, not a timeout.",
               kOptions, SW_PLUGIN_THREAD_SAFE | SW_PLUGIN_OPEN_OPTIONS)
