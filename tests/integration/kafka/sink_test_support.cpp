#include "sink_test_support.hpp"

namespace spillway::kafka_test {

sw_bytes EventBatch::keep(const std::string& s) {
    strings_.push_back(s);
    return sw_bytes{strings_.back().data(), strings_.back().size()};
}

void EventBatch::add(const EventSpec& spec) {
    sw_event ev{};
    ev.struct_size = sizeof(sw_event);
    ev.event_id = keep(spec.event_id);
    ev.pipeline = keep("test");
    ev.topic = keep(spec.topic);
    if (spec.key) ev.key = keep(*spec.key);
    ev.payload = keep(spec.payload);
    if (spec.event_type) ev.event_type = keep(*spec.event_type);
    if (spec.correlation_id) ev.correlation_id = keep(*spec.correlation_id);
    auto& hdrs = headers_.emplace_back();
    for (const auto& [name, value] : spec.headers) hdrs.push_back(sw_header{keep(name), keep(value)});
    ev.headers = hdrs.data();
    ev.n_headers = hdrs.size();
    events_.push_back(ev);
}

const testkit::Plugin& kafka_plugin() {
    static const testkit::Plugin plugin(testkit::plugin_file("kafka"));
    return plugin;
}

testkit::Config config_for(const std::string& bootstrap_servers) {
    return testkit::Config{{"bootstrap.servers", bootstrap_servers},
                           {"reconnect.backoff.ms", "10"},
                           {"reconnect.backoff.max.ms", "200"}};
}

testkit::Config config_for(const test_support::MockKafka& kafka) { return config_for(kafka.bootstraps()); }

sw_status send(testkit::SinkInstance& sink, const EventBatch& batch, std::vector<sw_result>& results,
               int64_t timeout_ms) {
    results.assign(batch.size(), sw_result{});
    return sink.vt().send(sink.get(), batch.data(), batch.size(), results.data(), timeout_ms);
}

sw_health health(testkit::SinkInstance& sink) {
    sw_health h{};
    h.struct_size = sizeof h;
    sink.vt().health(sink.get(), &h);
    return h;
}

const char* status_name(int32_t status) {
    switch (status) {
        case SW_OK: return "OK";
        case SW_RETRY: return "RETRY";
        case SW_REJECT: return "REJECT";
        case SW_FATAL: return "FATAL";
        default: return "other";
    }
}

}  // namespace spillway::kafka_test
