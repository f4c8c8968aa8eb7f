/* A sink written in plain C11 against plugin.h alone: proof that the ABI needs no C++. It
 * acknowledges every event and counts them. */
#include <spillway/plugin.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#ifndef ECHO_NAME
#define ECHO_NAME "c-echo"
#endif
#ifndef ECHO_MINOR
#define ECHO_MINOR 0 /* the minor it needs: the frozen v1.1 copy's build says 1 */
#endif

typedef struct echo {
    const sw_host_api *host;
    sw_host_ctx *ctx;
    const char *prefix;
    unsigned long sent;
} echo;

static sw_status echo_create(const sw_host_api *host, sw_host_ctx *ctx, sw_instance **out) {
    echo *e = calloc(1, sizeof *e);
    if (!e) return SW_FATAL;
    e->host = host;
    e->ctx = ctx;
    if (host->config_string(ctx, "prefix", &e->prefix) != SW_OK) e->prefix = "";
    *out = (sw_instance *)e;
    return SW_OK;
}
static sw_status echo_start(sw_instance *self) {
    echo *e = (echo *)self;
    e->host->log(e->ctx, SW_LOG_INFO, "c-echo started");
    return SW_OK;
}
static sw_status echo_stop(sw_instance *self, int64_t timeout_ms) {
    (void)self;
    (void)timeout_ms;
    return SW_OK;
}
static void echo_destroy(sw_instance *self) { free(self); }
static sw_status echo_health(sw_instance *self, sw_health *out) {
    (void)self;
    out->state = SW_HEALTH_UP;
    return SW_OK;
}
static sw_status echo_send(sw_instance *self, const sw_event *events, size_t n, sw_result *results,
                           int64_t timeout_ms) {
    echo *e = (echo *)self;
    size_t i;
    (void)events;
    (void)timeout_ms;
#ifdef ECHO_CRASHES
    /* The crashing variant: a plugin bug the engine cannot contain, only report. */
    if (n > 0) raise(SIGSEGV);
#endif
    for (i = 0; i < n; ++i) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].status = SW_OK;
        results[i].partition = -1;
        results[i].offset = (int64_t)e->sent++;
    }
    e->host->metric_add(e->ctx, "echo_sent_total", NULL, (double)n);
    return SW_OK;
}
static sw_status echo_flush(sw_instance *self, int64_t timeout_ms) {
    (void)self;
    (void)timeout_ms;
    return SW_OK;
}

static const sw_sink_vtable echo_vtable = {
    sizeof(sw_sink_vtable), echo_create, NULL, echo_start, echo_stop, echo_destroy, echo_health,
    echo_send, echo_flush, {0}};

static const sw_option echo_options[] = {
    {"prefix", SW_OPT_STRING, 0, "", "text put before nothing at all"},
};

SW_PLUGIN_EXPORT const sw_plugin_descriptor *sw_plugin_entry(uint16_t host_major, uint16_t host_minor) {
    static const sw_plugin_descriptor d = {
        SW_ABI_MAGIC, sizeof(sw_plugin_descriptor), SW_ABI_MAJOR, ECHO_MINOR, SW_KIND_SINK, ECHO_NAME, "1.0.0",
        "acknowledges every event (C11 ABI test)", echo_options, 1, &echo_vtable, SW_PLUGIN_THREAD_SAFE, 0, {0}};
    (void)host_minor;
    return host_major == SW_ABI_MAJOR ? &d : NULL;
}
