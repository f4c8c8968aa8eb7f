// librdkafka plugin: registers an on_acknowledgement interceptor on every configuration that
// loads it (see ack_probe.hpp).
#include "ack_probe.hpp"

#include <librdkafka/rdkafka.h>

#include <dlfcn.h>

#include <chrono>
#include <mutex>
#include <string>

namespace {

std::mutex g_mutex;
spillway_bench_ack_fn g_fn = nullptr;
void* g_user = nullptr;

rd_kafka_resp_err_t on_ack(rd_kafka_t*, rd_kafka_message_t* m, void*) {
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
    if (m->err) return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return RD_KAFKA_RESP_ERR_NO_ERROR;
    const void* value = nullptr;
    size_t size = 0;
    if (rd_kafka_header_get_last(hdrs, "event_id", &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR || !value)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    std::lock_guard lock(g_mutex);
    if (g_fn) g_fn(static_cast<const char*>(value), size, now, g_user);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

// Interceptors live on the configuration until rd_kafka_new (on_new adds the per-instance one),
// and a configuration copied by rd_kafka_conf_dup needs them again (on_conf_dup).
void add_conf_interceptors(rd_kafka_conf_t* conf);

rd_kafka_resp_err_t on_new(rd_kafka_t* rk, const rd_kafka_conf_t*, void*, char*, size_t) {
    return rd_kafka_interceptor_add_on_acknowledgement(rk, "spillway-bench-probe", on_ack, nullptr);
}

rd_kafka_resp_err_t on_conf_dup(rd_kafka_conf_t* new_conf, const rd_kafka_conf_t*, size_t, const char**, void*) {
    add_conf_interceptors(new_conf);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void add_conf_interceptors(rd_kafka_conf_t* conf) {
    rd_kafka_conf_interceptor_add_on_new(conf, "spillway-bench-probe", on_new, nullptr);
    rd_kafka_conf_interceptor_add_on_conf_dup(conf, "spillway-bench-probe", on_conf_dup, nullptr);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) rd_kafka_resp_err_t conf_init(rd_kafka_conf_t* conf, void** plug_opaquep,
                                                                     char* errstr, size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    *plug_opaquep = nullptr;
    add_conf_interceptors(conf);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

__attribute__((visibility("default"))) void spillway_bench_probe_set(spillway_bench_ack_fn fn, void* user) {
    std::lock_guard lock(g_mutex);
    g_fn = fn;
    g_user = user;
}

__attribute__((visibility("default"))) const char* spillway_bench_probe_path(void) {
    static std::string path = [] {
        Dl_info info{};
        if (dladdr(reinterpret_cast<void*>(&spillway_bench_probe_set), &info) && info.dli_fname) return std::string(info.dli_fname);
        return std::string();
    }();
    return path.c_str();
}

}
