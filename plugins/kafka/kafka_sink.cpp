#include "kafka_sink.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace spillway::plugins::kafka {

namespace {

using Clock = std::chrono::steady_clock;

// A queue-full produce() is retried after at most this pause (less once delivery reports made
// room), within the send's deadline: librdkafka's queue is the backpressure, not an error.
constexpr auto kQueueFullPause = std::chrono::milliseconds(2);
// How long a send begun while every broker is down waits for a report (the outage contract is
// "released within 0.5 s of the onset's report").
constexpr auto kDownGrace = std::chrono::milliseconds(500);

void add_header(rd_kafka_headers_t* headers, std::string_view name, sw_bytes value) {
    rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.ptr,
                        static_cast<ssize_t>(value.len));
}

sw_log_level log_level(int syslog_level) {
    if (syslog_level <= 3) return SW_LOG_ERROR;
    if (syslog_level == 4) return SW_LOG_WARN;
    if (syslog_level <= 6) return SW_LOG_INFO;
    return SW_LOG_DEBUG;
}

}  // namespace

KafkaSink::KafkaSink(sdk::Host host)
    : Sink(host), settings_(read_settings(host)), topics_(settings_.max_topic_handles) {
    client_id_ = "spillway-" + host.instance_name();
    // Check the librdkafka properties now, so a bad table fails at create, not at start.
    build_conf(settings_, client_id_, settings_.embedded ? std::string("127.0.0.1:9092") : std::string());
}

KafkaSink::~KafkaSink() { shutdown(0); }

void KafkaSink::validate(sdk::Host host) {
    const ProducerSettings settings = read_settings(host);
    build_conf(settings, "spillway-validate", settings.embedded ? std::string("127.0.0.1:9092") : std::string());
}

void KafkaSink::start() {
    if (producer_) return;
    std::string bootstrap;
    if (settings_.embedded) {
        embedded_ = std::make_unique<EmbeddedCluster>(settings_.embedded_brokers);
        bootstrap = embedded_->bootstraps();
        host().info("embedded Kafka mock cluster at " + bootstrap + " (" + std::to_string(settings_.embedded_brokers) +
                    " broker(s); read it with: kcat -b " + bootstrap + " -C -t <topic>)");
    }
    ConfPtr conf = build_conf(settings_, client_id_, bootstrap);
    rd_kafka_conf_set_opaque(conf.get(), this);
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &KafkaSink::on_delivery);
    rd_kafka_conf_set_error_cb(conf.get(), &KafkaSink::on_error);
    rd_kafka_conf_set_stats_cb(conf.get(), &KafkaSink::on_stats);
    rd_kafka_conf_set_log_cb(conf.get(), &KafkaSink::on_log);

    std::array<char, 512> errstr{};
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr.data(), errstr.size());
    if (!producer_) {
        embedded_.reset();
        throw sdk::Error(SW_INVALID_CONFIG, std::string("cannot create the Kafka producer: ") + errstr.data());
    }
    conf.release();  // the producer owns it now
    health_.set(SW_HEALTH_UNKNOWN, "connecting to the brokers", host().monotonic_us());
    pump_.start(producer_);
    watch_.start(
        producer_, [this] { return !health_.up() && !health_.fatal(); },
        [this] {
            if (health_.mark_up("a broker answered a metadata request", host().monotonic_us()))
                host().info("kafka: brokers reachable again (metadata answered)");
        });
    warm_up(bootstrap);
    host().info("kafka producer " + client_id_ + " started (bootstrap.servers=" +
                (bootstrap.empty() ? settings_.bootstrap_servers : bootstrap) + ")");
}

// Connects and fetches metadata before the first event needs them, so the first publishes after a
// start do not spend their deadline on connection setup and fall back to the outbox for nothing.
// Bounded: with Kafka down the engine still starts (and the circuit takes over).
void KafkaSink::warm_up(const std::string& bootstrap) {
    const auto started = std::chrono::steady_clock::now();
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(producer_, 1, nullptr, &md, kWarmUpTimeoutMs);
    // Every topic of the cluster: names on it need no check.
    topics_.attach(producer_, err ? nullptr : md, [this, bootstrap] { return make_checking_client(bootstrap); });
    if (md) rd_kafka_metadata_destroy(md);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    if (err) host().warn("kafka: brokers not reachable at start (" + std::string(rd_kafka_err2str(err)) + ")");
    else host().debug("kafka: metadata ready after " + std::to_string(ms) + " ms");
}

// The client that checks topic names one by one (topic_handles.hpp): the producer's own settings
// (brokers, security), but it never produces, so no idempotence (no producer id to fetch) and no
// statistics; its errors are not the sink's health, which the producer reports.
rd_kafka_t* KafkaSink::make_checking_client(const std::string& bootstrap) {
    try {
        ConfPtr conf = build_conf(settings_, client_id_ + "-topics", bootstrap);
        std::array<char, 512> errstr{};
        for (const auto& [key, value] : {std::pair<const char*, const char*>{"enable.idempotence", "false"},
                                         {"enable.gapless.guarantee", "false"},  // needs idempotence
                                         {"statistics.interval.ms", "0"}})
            if (rd_kafka_conf_set(conf.get(), key, value, errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK)
                throw sdk::Error(SW_INVALID_CONFIG, errstr.data());
        rd_kafka_conf_set_opaque(conf.get(), this);
        rd_kafka_conf_set_log_cb(conf.get(), &KafkaSink::on_log);
        rd_kafka_conf_set_error_cb(conf.get(), [](rd_kafka_t*, int, const char*, void*) {});
        rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr.data(), errstr.size());
        if (!rk) throw sdk::Error(SW_INVALID_CONFIG, errstr.data());
        conf.release();  // the client owns it now
        return rk;
    } catch (const std::exception& e) {
        host().warn(std::string("kafka: cannot make the topic-checking client (topics not yet known are "
                                "produced to unchecked): ") + e.what());
        return nullptr;
    }
}

void KafkaSink::stop(int64_t timeout_ms) {
    const int left = shutdown(timeout_ms);
    if (left > 0)
        throw sdk::Error(SW_RETRY, std::to_string(left) + " message(s) were not acknowledged within " +
                                       std::to_string(timeout_ms) + " ms and were purged");
}

int KafkaSink::shutdown(int64_t timeout_ms) {
    if (!producer_) return 0;
    rd_kafka_flush(producer_, static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, INT32_MAX)));
    const int left = rd_kafka_outq_len(producer_);
    if (left > 0) {
        host().warn("kafka: " + std::to_string(left) + " message(s) unacknowledged at the stop deadline; purging");
        // Purged messages get a delivery report (__PURGE_QUEUE/__PURGE_INFLIGHT → RETRY), so any
        // waiting sender and every completion are released before the producer goes away.
        rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(producer_, 1000);
    }
    watch_.stop();
    pump_.stop();
    topics_.release();
    rd_kafka_destroy(producer_);
    producer_ = nullptr;
    embedded_.reset();
    return left;
}

void KafkaSink::health(sw_health& out) {
    health_.fill(out);
}

void KafkaSink::flush(int64_t timeout_ms) {
    if (!producer_) return;
    if (rd_kafka_flush(producer_, static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, INT32_MAX))) != RD_KAFKA_RESP_ERR_NO_ERROR)
        throw sdk::Error(SW_RETRY, std::to_string(rd_kafka_outq_len(producer_)) +
                                       " message(s) still waiting for delivery after " + std::to_string(timeout_ms) + " ms");
}

rd_kafka_resp_err_t KafkaSink::produce(const sw_event& ev, Slot& slot, rd_kafka_topic_t* topic) {
    // event_id first, then the envelope's optional fields, then the user's headers.
    rd_kafka_headers_t* headers = rd_kafka_headers_new(3 + ev.n_headers);
    if (settings_.envelope_headers) {
        add_header(headers, "event_id", ev.event_id.ptr ? ev.event_id : sdk::bytes(""));
        if (sdk::present(ev.event_type)) add_header(headers, "event_type", ev.event_type);
        if (sdk::present(ev.correlation_id)) add_header(headers, "correlation_id", ev.correlation_id);
    }
    for (size_t i = 0; i < ev.n_headers; ++i) add_header(headers, sdk::view(ev.headers[i].name), ev.headers[i].value);

    // timestamp = "accepted": the time the engine accepted the event, in Kafka's milliseconds; 0
    // (timestamp = "sent", or an event without one) lets librdkafka stamp the time of producing.
    const int64_t timestamp_ms = settings_.accepted_timestamps && ev.created_at_us > 0 ? ev.created_at_us / 1000 : 0;
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer_, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(const_cast<char*>(ev.key.ptr), ev.key.len),
        RD_KAFKA_V_VALUE(const_cast<char*>(ev.payload.ptr), ev.payload.len), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE(&slot), RD_KAFKA_V_END);
    if (err) rd_kafka_headers_destroy(headers);  // owned by librdkafka only on success
    return err;
}

void KafkaSink::send(std::span<const sw_event> events, std::span<sw_result> out, int64_t timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0));
    for (auto& r : out) {
        r.partition = -1;
        r.offset = -1;
    }
    if (!producer_ || health_.fatal()) {
        const std::string why = producer_ ? health_.fatal_message() : std::string("the kafka sink is not started");
        for (auto& r : out) sdk::set_result(r, SW_FATAL, why);
        throw sdk::Error(SW_FATAL, why);
    }

    // Read before producing: an outage declared from here on settles this send at once. One
    // declared earlier shortens the wait to kDownGrace: the caller checked the health before the
    // report came (a publisher racing the onset), and librdkafka would hold its events until
    // message.timeout.ms; a broker that is back answers within the grace. The health is read
    // after the epoch, and the error callback marks it down before moving the epoch, so a send
    // that sees the new epoch also sees the sink down.
    const uint64_t epoch = pump_.outage_epoch();
    const bool sent_while_down = health_.down();
    const auto wait_by = sent_while_down ? std::min(deadline, Clock::now() + kDownGrace) : deadline;
    // Every accepted message references the completion until its report arrives.
    Completion* completion = Completion::create(events.size());
    // With every broker down nobody can answer a topic check: produce at once as before (RETRY)
    // rather than spend the deadline asking.
    const auto check_by = health_.down() ? Clock::now() : deadline;
    std::string_view topic_name;
    TopicHandles::Lookup topic;  // holds the handle while this send produces to it
    bool looked_up = false;
    size_t unknown_topic = 0;
    for (size_t i = 0; i < events.size(); ++i) {
        const std::string_view name = sdk::view(events[i].topic);
        if (!looked_up || name != topic_name) {  // a batch's events mostly share one topic
            topic_name = name;
            // No name is refused as producing by name would refuse it.
            topic = name.empty() ? TopicHandles::Lookup{nullptr, RD_KAFKA_RESP_ERR__INVALID_ARG}
                                 : topics_.get(name, check_by);
            looked_up = true;
        }
        if (!topic.handle) {  // no name, one librdkafka refuses, or one the cluster does not have
            completion->refused(i, topic.err);
            if (topic.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) ++unknown_topic;
            continue;
        }
        rd_kafka_resp_err_t err = produce(events[i], completion->slot(i), topic.handle.get());
        while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && Clock::now() < wait_by && pump_.outage_epoch() == epoch) {
            pump_.make_room(std::min(wait_by, Clock::now() + kQueueFullPause));
            err = produce(events[i], completion->slot(i), topic.handle.get());
        }
        if (err) completion->refused(i, err);
    }
    topic = {};

    size_t ok = 0, retry = 0, reject = 0, fatal = 0, expired = 0, cut_short = 0;
    std::string fatal_reason;
    // A fatal producer error reaches the reports as the error that caused it (e.g.
    // OUT_OF_ORDER_SEQUENCE_NUMBER, or _PURGE_QUEUE when no producer id could be had), and the
    // error callback may come later: ask librdkafka directly, then fail what did not succeed.
    std::array<char, 512> fatal_errstr{};
    std::string fatal_first;  // the first FATAL result's message, when librdkafka gives no reason
    {
        const bool outage = pump_.wait(*completion, wait_by, epoch);
        const bool down_grace_ended = sent_while_down && !outage && wait_by < deadline;
        const rd_kafka_resp_err_t fatal_code = rd_kafka_fatal_error(producer_, fatal_errstr.data(), fatal_errstr.size());
        const bool producer_fatal = fatal_code != RD_KAFKA_RESP_ERR_NO_ERROR;
        if (producer_fatal) fatal_reason = std::string(fatal_errstr.data()) + " (" + rd_kafka_err2name(fatal_code) + ")";
        for (size_t i = 0; i < events.size(); ++i) {
            sw_result& r = out[i];
            const Slot& slot = completion->slot(i);
            Verdict v{};
            if (slot.refused == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {  // the topic check's answer
                v = classify_produce_failure(slot.refused);
                // The engine lets through legal Kafka names only: nothing to escape.
                sdk::set_result(r, v.status,
                                "topic \"" + std::string(sdk::view(events[i].topic)) +
                                    "\" does not exist in the Kafka cluster: " + describe(slot.refused),
                                v.flags);
            } else if (slot.refused) {
                v = classify_produce_failure(slot.refused);
                sdk::set_result(r, v.status, "produce refused: " + describe(slot.refused), v.flags);
            } else if (!completion->settle(i)) {
                v = {producer_fatal ? SW_FATAL : SW_RETRY, SW_RESULT_POSSIBLY_DELIVERED};
                if (outage) {
                    ++cut_short;
                    sdk::set_result(r, v.status,
                                    producer_fatal ? "no delivery report before the fatal producer error"
                                                   : "all brokers went down before its delivery report (librdkafka "
                                                     "may still deliver it)",
                                    v.flags);
                } else if (down_grace_ended) {
                    ++cut_short;
                    sdk::set_result(r, v.status,
                                    "all brokers were down when it was sent and none answered within " +
                                        std::to_string(kDownGrace.count()) + " ms (librdkafka may still deliver it)",
                                    v.flags);
                } else {
                    ++expired;
                    sdk::set_result(r, v.status,
                                    "no delivery report within " + std::to_string(timeout_ms) +
                                        " ms (librdkafka may still deliver it)",
                                    v.flags);
                }
            } else {
                v = classify_delivery(slot.err, slot.persisted);
                if (producer_fatal && v.status == SW_RETRY) v.status = SW_FATAL;
                sdk::set_result(r, v.status, v.status == SW_OK ? std::string() : describe(slot.err), v.flags);
                r.partition = slot.partition;
                r.offset = slot.offset;
            }
            switch (v.status) {
                case SW_OK: ++ok; break;
                case SW_REJECT: ++reject; break;
                case SW_FATAL: ++fatal; if (fatal_first.empty()) fatal_first = r.message; break;
                default: ++retry; break;
            }
        }
    }
    completion->abandon();

    const sdk::Host& h = host();
    if (ok) h.count("kafka_delivery_total", static_cast<double>(ok), "result=ok");
    if (retry) h.count("kafka_delivery_total", static_cast<double>(retry), "result=retry");
    if (reject) h.count("kafka_delivery_total", static_cast<double>(reject), "result=reject");
    if (fatal) h.count("kafka_delivery_total", static_cast<double>(fatal), "result=fatal");
    if (expired) h.count("kafka_delivery_deadline_exceeded_total", static_cast<double>(expired));
    if (cut_short) h.count("kafka_delivery_outage_unreported_total", static_cast<double>(cut_short));
    if (unknown_topic) h.count("kafka_unknown_topic_total", static_cast<double>(unknown_topic));
    if (fatal) {
        if (fatal_reason.empty()) fatal_reason = fatal_first;
        if (health_.set_fatal(fatal_reason, h.monotonic_us())) h.error("kafka: fatal producer error: " + fatal_reason);
        throw sdk::Error(SW_FATAL, "fatal producer error: " + fatal_reason);
    }
}

void KafkaSink::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<KafkaSink*>(opaque);
    const bool delivered = msg->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (delivered && !self->health_.up() && self->health_.mark_up("delivering", self->host().monotonic_us()))
        self->host().info("kafka: brokers reachable again (delivery acknowledged)");
    auto* slot = static_cast<Slot*>(msg->_private);
    if (!slot) return;
    if (!Completion::deliver(*slot, *msg))
        // The sender gave up at its deadline and reported RETRY+possibly-delivered; say how it ended.
        self->host().count("kafka_late_delivery_total", 1, delivered ? "result=ok" : "result=failed");
}

void KafkaSink::on_error(rd_kafka_t* rk, int code, const char* reason, void* opaque) {
    auto* self = static_cast<KafkaSink*>(opaque);
    const auto err = static_cast<rd_kafka_resp_err_t>(code);
    const sdk::Host& h = self->host();
    h.count("kafka_client_errors_total", 1, (std::string("error=") + rd_kafka_err2name(err)).c_str());
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        std::array<char, 512> errstr{};
        const rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, errstr.data(), errstr.size());
        const std::string why = std::string(errstr.data()) + " (" + rd_kafka_err2name(fatal) + ")";
        if (self->health_.set_fatal(why, h.monotonic_us()))
            h.error("kafka: fatal producer error, the instance must be rebuilt: " + why);
        self->pump_.outage();  // after set_fatal: a settled send finds the producer fatal
    } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        // The senders waiting now settle at once (RETRY, possibly delivered) instead of at their
        // deadline: the circuit opens for new calls anyway, and their events go to the outbox.
        // Down first, then the epoch: see send().
        const bool changed = self->health_.set(SW_HEALTH_DOWN, std::string("all brokers down: ") + reason, h.monotonic_us());
        self->pump_.outage();
        if (changed) {
            h.warn(std::string("kafka: all brokers down: ") + reason);
            self->watch_.sink_went_down();
        }
    } else {
        h.debug(std::string("kafka: ") + rd_kafka_err2name(err) + ": " + reason);
    }
}

int KafkaSink::on_stats(rd_kafka_t*, char* json, size_t len, void* opaque) {
    auto* self = static_cast<KafkaSink*>(opaque);
    const auto stats = nlohmann::json::parse(json, json + len, nullptr, false);
    if (stats.is_discarded()) return 0;
    int known = 0, up = 0;
    if (auto it = stats.find("brokers"); it != stats.end() && it->is_object()) {
        for (const auto& [name, broker] : it->items()) {
            if (broker.value("nodeid", -1) < 0) continue;  // bootstrap entries, not cluster members
            ++known;
            if (broker.value("state", std::string()) == "UP") ++up;
        }
    }
    const sdk::Host& h = self->host();
    h.gauge("kafka_brokers_up", up);
    h.gauge("kafka_queue_messages", stats.value("msg_cnt", 0.0));
    h.gauge("kafka_topic_handles", static_cast<double>(self->topics_.size()));
    // librdkafka's own topic objects: it frees them only with the producer (see topic_handles.hpp).
    if (auto it = stats.find("topics"); it != stats.end() && it->is_object())
        h.gauge("kafka_client_topics", static_cast<double>(it->size()));
    if (up > 0 && self->health_.mark_up(std::to_string(up) + "/" + std::to_string(known) + " brokers up",
                                        h.monotonic_us()))
        h.info("kafka: " + std::to_string(up) + "/" + std::to_string(known) + " brokers up");
    return 0;  // librdkafka frees the json
}

void KafkaSink::on_log(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
    auto* self = static_cast<KafkaSink*>(rd_kafka_opaque(rk));
    if (!self) return;
    self->host().log(log_level(level), std::string("librdkafka ") + facility + ": " + message);
}

}  // namespace spillway::plugins::kafka
