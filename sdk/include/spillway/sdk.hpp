// spillway/sdk.hpp — header-only C++ layer over plugin.h.
//
// A plugin author writes one class deriving from spillway::sdk::Sink, Store, Notifier, Scheduler
// or Transform, and exports it with one macro:
//
//   class FileSink : public spillway::sdk::Sink {
//    public:
//     explicit FileSink(spillway::sdk::Host host) : Sink(host) { path_ = host.string("path"); }
//     void send(std::span<const sw_event> evs, std::span<sw_result> out, int64_t) override {...}
//   };
//   static const sw_option kOptions[] = {{"path", SW_OPT_STRING, SW_OPT_REQUIRED, nullptr, "..."}};
//   SW_EXPORT_SINK(FileSink, "file", "1.0.0", "writes events to a file", kOptions, 0)
//
// Every vtable slot is wrapped: an sdk::Error becomes its status, any other exception becomes
// FATAL (INVALID_CONFIG from the constructor), and the message reaches the host. Nothing C++
// crosses the boundary.
#ifndef SPILLWAY_SDK_HPP
#define SPILLWAY_SDK_HPP

#include <spillway/plugin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::sdk {

// Throw to return a specific status with a message.
class Error : public std::runtime_error {
public:
    Error(sw_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    sw_status status() const noexcept { return status_; }

private:
    sw_status status_;
};

// Throw from a constructor or validate() to blame one configuration key (file:line:col).
class ConfigError : public Error {
public:
    ConfigError(std::string key, const std::string& message)
        : Error(SW_INVALID_CONFIG, message), key_(std::move(key)) {}
    const std::string& key() const noexcept { return key_; }

private:
    std::string key_;
};

inline std::string_view view(sw_bytes b) noexcept {
    return b.ptr ? std::string_view(b.ptr, b.len) : std::string_view();
}
inline bool present(sw_bytes b) noexcept { return b.ptr != nullptr; }
inline sw_bytes bytes(std::string_view s) noexcept { return sw_bytes{s.data(), s.size()}; }

// Copies a message into a result's fixed buffer, truncating safely.
inline void set_message(sw_result& r, std::string_view msg) noexcept {
    const size_t n = msg.size() < sizeof(r.message) - 1 ? msg.size() : sizeof(r.message) - 1;
    if (n) std::memcpy(r.message, msg.data(), n);  // an empty view may carry a null pointer
    r.message[n] = '\0';
}
// Sets where it landed to unknown (-1): a sink that knows sets partition and offset after this.
inline void set_result(sw_result& r, sw_status status, std::string_view msg = {}, uint32_t flags = 0) noexcept {
    r.status = status;
    r.flags = flags;
    r.partition = -1;
    r.offset = -1;
    set_message(r, msg);
}
inline void set_message(sw_health& h, std::string_view msg) noexcept {
    const size_t n = msg.size() < sizeof(h.message) - 1 ? msg.size() : sizeof(h.message) - 1;
    if (n) std::memcpy(h.message, msg.data(), n);
    h.message[n] = '\0';
}

// The host's services, bound to this instance.
class Host {
public:
    Host(const sw_host_api* api, sw_host_ctx* ctx) noexcept : api_(api), ctx_(ctx) {}

    const sw_host_api* api() const noexcept { return api_; }
    sw_host_ctx* ctx() const noexcept { return ctx_; }

    void log(sw_log_level level, const std::string& msg) const { api_->log(ctx_, level, msg.c_str()); }
    void debug(const std::string& msg) const { log(SW_LOG_DEBUG, msg); }
    void info(const std::string& msg) const { log(SW_LOG_INFO, msg); }
    void warn(const std::string& msg) const { log(SW_LOG_WARN, msg); }
    void error(const std::string& msg) const { log(SW_LOG_ERROR, msg); }

    std::optional<std::string> opt_string(const char* key) const {
        const char* out = nullptr;
        if (api_->config_string(ctx_, key, &out) != SW_OK || !out) return std::nullopt;
        return std::string(out);
    }
    std::optional<int64_t> opt_int(const char* key) const {
        int64_t v = 0;
        const sw_status st = api_->config_int(ctx_, key, &v);  // before `v` is read below
        return got(st, v, key, "an integer");
    }
    std::optional<double> opt_double(const char* key) const {
        double v = 0;
        const sw_status st = api_->config_double(ctx_, key, &v);
        return got(st, v, key, "a number");
    }
    std::optional<bool> opt_bool(const char* key) const {
        int v = 0;
        const sw_status st = api_->config_bool(ctx_, key, &v);
        return got(st, v != 0, key, "a boolean (true or false)");
    }
    std::optional<int64_t> opt_duration_ms(const char* key) const {
        int64_t v = 0;
        const sw_status st = api_->config_duration_ms(ctx_, key, &v);
        return got(st, v, key, "a duration such as \"250ms\" or \"2s\"");
    }
    std::optional<std::vector<std::string>> opt_list(const char* key) const {
        size_t n = 0;
        if (api_->config_list_size(ctx_, key, &n) != SW_OK) return std::nullopt;
        std::vector<std::string> items;
        items.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            const char* s = nullptr;
            if (api_->config_list_item(ctx_, key, i, &s) == SW_OK && s) items.emplace_back(s);
        }
        return items;
    }

    // Required values: absent means a schema without a default, which is the author's bug.
    std::string string(const char* key) const { return require(opt_string(key), key); }
    int64_t integer(const char* key) const { return require(opt_int(key), key); }
    double real(const char* key) const { return require(opt_double(key), key); }
    bool boolean(const char* key) const { return require(opt_bool(key), key); }
    int64_t duration_ms(const char* key) const { return require(opt_duration_ms(key), key); }
    std::vector<std::string> list(const char* key) const { return require(opt_list(key), key); }

    // Every key and value of the component's table, as strings.
    std::vector<std::pair<std::string, std::string>> entries() const {
        std::vector<std::pair<std::string, std::string>> out;
        api_->config_each(
            ctx_,
            [](void* user, const char* k, const char* v) {
                static_cast<std::vector<std::pair<std::string, std::string>>*>(user)->emplace_back(k, v);
            },
            &out);
        return out;
    }

    void count(const char* name, double delta = 1, const char* labels = nullptr) const {
        api_->metric_add(ctx_, name, labels, delta);
    }
    void gauge(const char* name, double value, const char* labels = nullptr) const {
        api_->metric_set(ctx_, name, labels, value);
    }
    void observe(const char* name, double value, const char* labels = nullptr) const {
        api_->metric_observe(ctx_, name, labels, value);
    }
    int64_t now_unix_us() const { return api_->now_unix_us(ctx_); }
    int64_t monotonic_us() const { return api_->monotonic_us(ctx_); }
    std::string instance_name() const { return api_->instance_name(ctx_); }
    std::string environment() const { return api_->environment(ctx_); }

private:
    // Absent is nullopt; present but malformed is the author's user's error, said as such (a
    // host that cannot parse a value answers SW_INVALID_CONFIG).
    template <class T>
    static std::optional<T> got(sw_status st, T v, const char* key, const char* what) {
        if (st == SW_OK) return v;
        if (st == SW_INVALID_CONFIG) throw ConfigError(key, std::string("option '") + key + "' is malformed: expected " + what);
        return std::nullopt;
    }
    template <class T>
    static T require(std::optional<T> v, const char* key) {
        if (!v) throw ConfigError(key, std::string("missing required option '") + key + "'");
        return std::move(*v);
    }

    const sw_host_api* api_;
    sw_host_ctx* ctx_;
};

// Base of every plugin class: lifecycle with sensible defaults.
class Component {
public:
    explicit Component(Host host) noexcept : host_(host) {}
    virtual ~Component() = default;
    Component(const Component&) = delete;
    Component& operator=(const Component&) = delete;

    virtual void start() {}
    virtual void stop(int64_t /*timeout_ms*/) {}
    // Fill `out` (state and message); the default says UP.
    virtual void health(sw_health& out) { out.state = SW_HEALTH_UP; }

    const Host& host() const noexcept { return host_; }

private:
    Host host_;
};

class Sink : public Component {
public:
    using Component::Component;
    // Fill out[i] for each event; OK only for what the destination acknowledged.
    virtual void send(std::span<const sw_event> events, std::span<sw_result> out, int64_t timeout_ms) = 0;
    virtual void flush(int64_t /*timeout_ms*/) {}
};

struct Stats {
    int64_t pending = 0, leased = 0, dead = 0, oldest_pending_age_ms = 0;
};

// A batch the store hands out; the SDK keeps it alive until the host releases it.
struct Batch {
    virtual ~Batch() = default;
    std::vector<sw_event> events;
};

class Store : public Component {
public:
    using Component::Component;
    virtual void migrate() {}
    // Throw Error(SW_FULL, ...) when the backlog bound would be passed.
    virtual void append(std::span<const sw_event> events, std::span<sw_result> out) = 0;
    virtual std::unique_ptr<Batch> claim(std::string_view pipeline, size_t limit, int64_t lease_ms) = 0;
    // The batch after `prev` (one of this store's unsettled claims), as claim would hand it out once
    // prev's rows were all settled OK: see sw_store_vtable.claim_next. Optional.
    virtual std::unique_ptr<Batch> claim_next(const Batch& /*prev*/, size_t /*limit*/, int64_t /*lease_ms*/) {
        throw Error(SW_UNSUPPORTED, "claim_next is not supported");
    }
    virtual void complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) = 0;
    // Mark `pipeline` as run by this instance (see sw_store_vtable.hold); throw Error(SW_REJECT,
    // naming the other holder) on a conflict. Optional.
    virtual void hold(std::string_view /*pipeline*/, sw_hold_mode /*mode*/, std::string_view /*member*/) {
        throw Error(SW_UNSUPPORTED, "hold is not supported");
    }
    // found[i] = whether `pipeline` has a pending row of keys[i] (see sw_store_vtable.pending_among).
    virtual void pending_among(std::string_view /*pipeline*/, std::span<const sw_bytes> /*keys*/,
                               std::span<uint8_t> /*found*/) {
        throw Error(SW_UNSUPPORTED, "pending_among is not supported");
    }
    // How `pipeline` is coordinated, as one JSON object (see sw_store_vtable.coordination).
    virtual std::string coordination(std::string_view /*pipeline*/) {
        throw Error(SW_UNSUPPORTED, "coordination is not supported");
    }
    // The health of the sink `pipeline` sends to (see sw_store_vtable.sink_health).
    virtual void sink_health(std::string_view /*pipeline*/, sw_health_state /*state*/) {}
    virtual void release_leases(std::span<const int64_t> row_ids) = 0;
    virtual Stats stats(std::string_view pipeline) = 0;
    virtual void pending_keys(std::string_view /*pipeline*/, sw_key_visit_fn /*visit*/, void* /*user*/) {
        throw Error(SW_UNSUPPORTED, "pending_keys is not supported");
    }
    virtual std::unique_ptr<Batch> list_dead(std::string_view /*pipeline*/, int64_t /*after_row_id*/,
                                             size_t /*limit*/) {
        throw Error(SW_UNSUPPORTED, "dead letters are not supported");
    }
    // Empty `event_ids` means all of the pipeline. Return the number of rows affected.
    virtual int64_t replay_dead(std::string_view /*pipeline*/, std::span<const sw_bytes> /*event_ids*/) {
        throw Error(SW_UNSUPPORTED, "dead letters are not supported");
    }
    virtual int64_t purge_dead(std::string_view /*pipeline*/, std::span<const sw_bytes> /*event_ids*/) {
        throw Error(SW_UNSUPPORTED, "dead letters are not supported");
    }
};

class Notifier : public Component {
public:
    using Component::Component;
    virtual void notify(std::string_view channel) = 0;
    // Return true when rung, false on timeout or interrupt. Throw Error(SW_RETRY) when the
    // backend is unavailable (after waiting out the timeout).
    virtual bool wait(std::string_view channel, int64_t timeout_ms) = 0;
    virtual void interrupt() = 0;
};

class Scheduler : public Component {
public:
    using Component::Component;
    virtual int64_t next_delay(const sw_round& round) = 0;
    virtual void reset() {}
};

// The value of the first header named `name` (case-sensitive), or nullopt.
inline std::optional<std::string_view> header(const sw_event& e, std::string_view name) noexcept {
    for (size_t i = 0; i < e.n_headers; ++i)
        if (view(e.headers[i].name) == name && e.headers[i].value.ptr) return view(e.headers[i].value);
    return std::nullopt;
}

// One event on its way through a Transform: what came in, and what the transform changes. Every
// setter copies its text, so the author may pass temporaries.
class Edit {
public:
    explicit Edit(const sw_event& in) : in_(&in), out_(in) {}
    Edit(const Edit&) = delete;
    Edit& operator=(const Edit&) = delete;

    const sw_event& in() const noexcept { return *in_; }

    void set_topic(std::string_view topic) { out_.topic = keep(topic); }
    void set_key(std::string_view key) { out_.key = keep(key); }
    void clear_key() noexcept { out_.key = sw_bytes{nullptr, 0}; }
    void set_payload(std::string_view payload, bool binary = false) {
        out_.payload = keep(payload);
        out_.flags = binary ? (out_.flags | SW_EVENT_PAYLOAD_BINARY) : (out_.flags & ~SW_EVENT_PAYLOAD_BINARY);
    }
    // No payload at all (a Kafka tombstone), as opposed to an empty one.
    void clear_payload() noexcept {
        out_.payload = sw_bytes{nullptr, 0};
        out_.flags &= ~SW_EVENT_PAYLOAD_BINARY;
    }
    // Replaces every header named `name` by one with this value, at the end.
    void set_header(std::string_view name, std::string_view value) {
        remove_header(name);
        headers_.push_back(sw_header{keep(name), keep(value)});
    }
    void remove_header(std::string_view name) {
        own_headers();
        std::erase_if(headers_, [&](const sw_header& h) { return view(h.name) == name; });
    }
    // The event goes no further: the host counts it, logs it and settles it as delivered.
    void drop(std::string_view why = {}) { verdict(SW_OK, SW_RESULT_DROPPED, why); }
    // The event cannot become a record: refused, or dead-lettered, with this reason.
    void reject(std::string_view why) { verdict(SW_REJECT, 0, why); }

    // The SDK's: the event as it goes on, and its result.
    const sw_event& out() noexcept {
        if (headers_owned_) {
            out_.headers = headers_.empty() ? nullptr : headers_.data();
            out_.n_headers = headers_.size();
        }
        return out_;
    }
    const sw_result& result() const noexcept { return result_; }

private:
    sw_bytes keep(std::string_view text) {
        kept_.emplace_back(text);  // a deque: earlier strings never move
        return sw_bytes{kept_.back().data(), kept_.back().size()};
    }
    void own_headers() {
        if (headers_owned_) return;
        headers_.assign(in_->headers, in_->headers + in_->n_headers);
        headers_owned_ = true;
    }
    void verdict(sw_status status, uint32_t flags, std::string_view why) noexcept {
        set_result(result_, status, why, flags);
    }

    const sw_event* in_;
    sw_event out_;
    sw_result result_{};
    std::deque<std::string> kept_;
    std::vector<sw_header> headers_;
    bool headers_owned_ = false;
};

// Rewrites events on their way to the sink (topic, key, payload, headers), or drops or rejects
// them. Must be a pure function of the event and the configuration: the same event sent again
// (a retry, a relay after an outage) must become the same record.
class Transform : public Component {
public:
    using Component::Component;
    virtual void apply(Edit& event) = 0;
};

namespace detail {

inline thread_local sw_status last_status = SW_OK;

// Runs f, mapping exceptions to statuses and reporting their messages.
template <class F>
sw_status guard(const sw_host_api* api, sw_host_ctx* ctx, sw_status otherwise, F&& f) noexcept {
    try {
        f();
        return SW_OK;
    } catch (const ConfigError& e) {
        if (api && ctx) api->config_error(ctx, e.key().c_str(), e.what());
        return e.status();
    } catch (const Error& e) {
        if (api && ctx) api->set_error(ctx, e.what());
        return e.status();
    } catch (const std::exception& e) {
        if (api && ctx) api->set_error(ctx, e.what());
        return otherwise;
    } catch (...) {
        if (api && ctx) api->set_error(ctx, "unknown exception");
        return otherwise;
    }
}

// What the C side holds: the C++ object and the host binding.
template <class T>
struct Instance {
    T* object;
    const sw_host_api* api;
    sw_host_ctx* ctx;
};

template <class T>
Instance<T>* self(sw_instance* p) noexcept {
    return reinterpret_cast<Instance<T>*>(p);
}

template <class T>
sw_status create(const sw_host_api* api, sw_host_ctx* ctx, sw_instance** out) noexcept {
    *out = nullptr;
    return guard(api, ctx, SW_INVALID_CONFIG, [&] {
        auto* inst = new Instance<T>{nullptr, api, ctx};
        try {
            inst->object = new T(Host(api, ctx));
        } catch (...) {
            delete inst;
            throw;
        }
        *out = reinterpret_cast<sw_instance*>(inst);
    });
}

// validate: construct and discard (constructors must not connect); a class may also provide
// `static void validate(Host)` for deeper checks, which is then used instead.
template <class T>
sw_status validate(const sw_host_api* api, sw_host_ctx* ctx) noexcept {
    return guard(api, ctx, SW_INVALID_CONFIG, [&] {
        if constexpr (requires(Host h) { T::validate(h); }) {
            T::validate(Host(api, ctx));
        } else {
            T object{Host(api, ctx)};
            (void)object;
        }
    });
}

template <class T>
sw_status start(sw_instance* p) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_FATAL, [&] { s->object->start(); });
}
template <class T>
sw_status stop(sw_instance* p, int64_t timeout_ms) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_FATAL, [&] { s->object->stop(timeout_ms); });
}
template <class T>
void destroy(sw_instance* p) noexcept {
    auto* s = self<T>(p);
    guard(s->api, s->ctx, SW_FATAL, [&] { delete s->object; });
    delete s;
}
template <class T>
sw_status health(sw_instance* p, sw_health* out) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_FATAL, [&] { s->object->health(*out); });
}

// --- sink ---
template <class T>
sw_status sink_send(sw_instance* p, const sw_event* evs, size_t n, sw_result* results, int64_t timeout_ms) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_FATAL, [&] {
        s->object->send(std::span<const sw_event>(evs, n), std::span<sw_result>(results, n), timeout_ms);
    });
}
template <class T>
sw_status sink_flush(sw_instance* p, int64_t timeout_ms) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] { s->object->flush(timeout_ms); });
}
template <class T>
const sw_sink_vtable* sink_vtable() noexcept {
    static const sw_sink_vtable vt = {
        sizeof(sw_sink_vtable), &create<T>, &validate<T>, &start<T>, &stop<T>, &destroy<T>, &health<T>,
        &sink_send<T>, &sink_flush<T>, {}};
    return &vt;
}

// --- store ---
inline void fill_batch(std::unique_ptr<Batch> b, sw_batch* out) noexcept {
    out->events = b->events.data();
    out->n = b->events.size();
    out->plugin_data = b.release();
}
template <class T>
sw_status store_migrate(sw_instance* p) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] { s->object->migrate(); });
}
template <class T>
sw_status store_append(sw_instance* p, const sw_event* evs, size_t n, sw_result* results) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        s->object->append(std::span<const sw_event>(evs, n), std::span<sw_result>(results, n));
    });
}
template <class T>
sw_status store_claim(sw_instance* p, const char* pipeline, size_t limit, int64_t lease_ms, sw_batch* out) noexcept {
    auto* s = self<T>(p);
    out->events = nullptr;
    out->n = 0;
    out->plugin_data = nullptr;
    return guard(s->api, s->ctx, SW_RETRY, [&] { fill_batch(s->object->claim(pipeline, limit, lease_ms), out); });
}
template <class T>
sw_status store_claim_next(sw_instance* p, const sw_batch* prev, size_t limit, int64_t lease_ms, sw_batch* out) noexcept {
    auto* s = self<T>(p);
    out->events = nullptr;
    out->n = 0;
    out->plugin_data = nullptr;
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        // No batch at all still reaches the store: one without claim_next says UNSUPPORTED to it.
        static const Batch none;
        const Batch& from = prev && prev->plugin_data ? *static_cast<const Batch*>(prev->plugin_data) : none;
        fill_batch(s->object->claim_next(from, limit, lease_ms), out);
    });
}
template <class T>
sw_status store_hold(sw_instance* p, const char* pipeline, uint32_t mode, const char* member) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        if (mode != SW_HOLD_SHARED && mode != SW_HOLD_EXCLUSIVE && mode != SW_HOLD_SHARDS)
            throw Error(SW_REJECT, "hold: unknown mode " + std::to_string(mode));
        s->object->hold(pipeline, static_cast<sw_hold_mode>(mode), member ? member : "");
    });
}
template <class T>
sw_status store_pending_among(sw_instance* p, const char* pipeline, const sw_bytes* keys, size_t n,
                              uint8_t* found) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        std::fill(found, found + n, uint8_t{0});
        s->object->pending_among(pipeline, std::span<const sw_bytes>(keys, n), std::span<uint8_t>(found, n));
    });
}
template <class T>
sw_status store_coordination(sw_instance* p, const char* pipeline, sw_key_visit_fn visit, void* user) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        const std::string text = s->object->coordination(pipeline);
        visit(user, sw_bytes{text.data(), text.size()});
    });
}
template <class T>
sw_status store_sink_health(sw_instance* p, const char* pipeline, int32_t state) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] { s->object->sink_health(pipeline, static_cast<sw_health_state>(state)); });
}
// Every batch the SDK hands out (store claims, dead letters, transforms) is a Batch it allocated.
inline void release_batch(sw_instance*, sw_batch* batch) noexcept {
    delete static_cast<Batch*>(batch->plugin_data);
    batch->plugin_data = nullptr;
    batch->events = nullptr;
    batch->n = 0;
}
template <class T>
sw_status store_complete(sw_instance* p, const int64_t* ids, const sw_result* results, size_t n) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        s->object->complete(std::span<const int64_t>(ids, n), std::span<const sw_result>(results, n));
    });
}
template <class T>
sw_status store_release_leases(sw_instance* p, const int64_t* ids, size_t n) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] { s->object->release_leases(std::span<const int64_t>(ids, n)); });
}
template <class T>
sw_status store_stats(sw_instance* p, const char* pipeline, sw_store_stats* out) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        const Stats st = s->object->stats(pipeline);
        out->pending = st.pending;
        out->leased = st.leased;
        out->dead = st.dead;
        out->oldest_pending_age_ms = st.oldest_pending_age_ms;
    });
}
template <class T>
sw_status store_pending_keys(sw_instance* p, const char* pipeline, sw_key_visit_fn visit, void* user) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] { s->object->pending_keys(pipeline, visit, user); });
}
template <class T>
sw_status store_list_dead(sw_instance* p, const char* pipeline, int64_t after, size_t limit, sw_batch* out) noexcept {
    auto* s = self<T>(p);
    out->events = nullptr;
    out->n = 0;
    out->plugin_data = nullptr;
    return guard(s->api, s->ctx, SW_RETRY, [&] { fill_batch(s->object->list_dead(pipeline, after, limit), out); });
}
template <class T>
sw_status store_replay_dead(sw_instance* p, const char* pipeline, const sw_bytes* ids, size_t n, int64_t* count) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        const int64_t c = s->object->replay_dead(pipeline, std::span<const sw_bytes>(ids, n));
        if (count) *count = c;
    });
}
template <class T>
sw_status store_purge_dead(sw_instance* p, const char* pipeline, const sw_bytes* ids, size_t n, int64_t* count) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] {
        const int64_t c = s->object->purge_dead(pipeline, std::span<const sw_bytes>(ids, n));
        if (count) *count = c;
    });
}
template <class T>
const sw_store_vtable* store_vtable() noexcept {
    static const sw_store_vtable vt = {
        sizeof(sw_store_vtable), &create<T>, &validate<T>, &start<T>, &stop<T>, &destroy<T>, &health<T>,
        &store_migrate<T>, &store_append<T>, &store_claim<T>, &release_batch, &store_complete<T>,
        &store_release_leases<T>, &store_stats<T>, &store_pending_keys<T>, &store_list_dead<T>,
        &store_replay_dead<T>, &store_purge_dead<T>, &store_claim_next<T>, &store_hold<T>,
        &store_pending_among<T>, &store_coordination<T>, &store_sink_health<T>, {}};
    return &vt;
}

// --- notifier ---
template <class T>
sw_status notifier_notify(sw_instance* p, const char* channel) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_RETRY, [&] { s->object->notify(channel); });
}
template <class T>
sw_status notifier_wait(sw_instance* p, const char* channel, int64_t timeout_ms, int* woken) noexcept {
    auto* s = self<T>(p);
    *woken = 0;
    return guard(s->api, s->ctx, SW_RETRY, [&] { *woken = s->object->wait(channel, timeout_ms) ? 1 : 0; });
}
template <class T>
void notifier_interrupt(sw_instance* p) noexcept {
    auto* s = self<T>(p);
    guard(s->api, s->ctx, SW_FATAL, [&] { s->object->interrupt(); });
}
template <class T>
const sw_notifier_vtable* notifier_vtable() noexcept {
    static const sw_notifier_vtable vt = {
        sizeof(sw_notifier_vtable), &create<T>, &validate<T>, &start<T>, &stop<T>, &destroy<T>, &health<T>,
        &notifier_notify<T>, &notifier_wait<T>, &notifier_interrupt<T>, {}};
    return &vt;
}

// --- scheduler ---
template <class T>
sw_status scheduler_next_delay(sw_instance* p, const sw_round* round, int64_t* delay_ms) noexcept {
    auto* s = self<T>(p);
    return guard(s->api, s->ctx, SW_FATAL, [&] { *delay_ms = s->object->next_delay(*round); });
}
template <class T>
void scheduler_reset(sw_instance* p) noexcept {
    auto* s = self<T>(p);
    guard(s->api, s->ctx, SW_FATAL, [&] { s->object->reset(); });
}
template <class T>
const sw_scheduler_vtable* scheduler_vtable() noexcept {
    static const sw_scheduler_vtable vt = {
        sizeof(sw_scheduler_vtable), &create<T>, &validate<T>, &start<T>, &stop<T>, &destroy<T>, &health<T>,
        &scheduler_next_delay<T>, &scheduler_reset<T>, {}};
    return &vt;
}

// --- transform ---
struct EditBatch : Batch {
    std::deque<Edit> edits;  // Edit does not move: its spans point into itself
};
template <class T>
sw_status transform_apply(sw_instance* p, const sw_event* evs, size_t n, sw_result* results, sw_batch* out) noexcept {
    auto* s = self<T>(p);
    out->events = nullptr;
    out->n = 0;
    out->plugin_data = nullptr;
    return guard(s->api, s->ctx, SW_FATAL, [&] {
        auto batch = std::make_unique<EditBatch>();
        for (size_t i = 0; i < n; ++i) {
            Edit& e = batch->edits.emplace_back(evs[i]);
            set_result(results[i], SW_OK);
            s->object->apply(e);
        }
        batch->events.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            batch->events.push_back(batch->edits[i].out());
            results[i] = batch->edits[i].result();
        }
        fill_batch(std::move(batch), out);
    });
}
template <class T>
const sw_transform_vtable* transform_vtable() noexcept {
    static const sw_transform_vtable vt = {
        sizeof(sw_transform_vtable), &create<T>, &validate<T>, &start<T>, &stop<T>, &destroy<T>, &health<T>,
        &transform_apply<T>, &release_batch, {}};
    return &vt;
}

template <size_t N>
constexpr size_t count_of(const sw_option (&)[N]) noexcept {
    return N;
}
// A plugin without options passes SW_NO_OPTIONS (C++ has no empty arrays).
constexpr size_t count_of(std::nullptr_t) noexcept { return 0; }
// A table with data() and size(), such as spillway/options.hpp's sdk::Options.
template <class Table>
auto count_of(const Table& t) noexcept -> decltype(t.size()) {
    return t.size();
}
template <size_t N>
constexpr const sw_option* rows_of(const sw_option (&a)[N]) noexcept {
    return a;
}
constexpr const sw_option* rows_of(std::nullptr_t) noexcept { return nullptr; }
template <class Table>
auto rows_of(const Table& t) noexcept -> decltype(t.data()) {
    return t.data();
}

}  // namespace detail
}  // namespace spillway::sdk

// One export macro per kind. OPTIONS is a static array of sw_option, an sdk::Options table
// (spillway/options.hpp), or SW_NO_OPTIONS; FLAGS is SW_PLUGIN_* bits.
#define SW_NO_OPTIONS nullptr
#define SW_SDK_EXPORT_(KIND, VTABLE, CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS)             \
    extern "C" SW_PLUGIN_EXPORT const sw_plugin_descriptor* sw_plugin_entry(uint16_t host_major,    \
                                                                            uint16_t host_minor) {  \
        (void)host_minor;                                                                           \
        if (host_major != SW_ABI_MAJOR) return nullptr;                                             \
        static const sw_plugin_descriptor descriptor = {                                            \
            SW_ABI_MAGIC, sizeof(sw_plugin_descriptor), SW_ABI_MAJOR, SW_ABI_MINOR, KIND, NAME,     \
            VERSION, DESCRIPTION, ::spillway::sdk::detail::rows_of(OPTIONS),                        \
            ::spillway::sdk::detail::count_of(OPTIONS),                                             \
            ::spillway::sdk::detail::VTABLE<CLASS>(), FLAGS, 0, {}};                                \
        return &descriptor;                                                                         \
    }

#define SW_EXPORT_SINK(CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS) \
    SW_SDK_EXPORT_(SW_KIND_SINK, sink_vtable, CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS)
#define SW_EXPORT_STORE(CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS) \
    SW_SDK_EXPORT_(SW_KIND_STORE, store_vtable, CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS)
#define SW_EXPORT_NOTIFIER(CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS) \
    SW_SDK_EXPORT_(SW_KIND_NOTIFIER, notifier_vtable, CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS)
#define SW_EXPORT_SCHEDULER(CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS) \
    SW_SDK_EXPORT_(SW_KIND_SCHEDULER, scheduler_vtable, CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS)
// Transforms are pure functions of their configuration: export them with SW_PLUGIN_THREAD_SAFE
// unless an instance keeps state that calls share.
#define SW_EXPORT_TRANSFORM(CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS) \
    SW_SDK_EXPORT_(SW_KIND_TRANSFORM, transform_vtable, CLASS, NAME, VERSION, DESCRIPTION, OPTIONS, FLAGS)

#endif  // SPILLWAY_SDK_HPP
