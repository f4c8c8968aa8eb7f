/* A transform written in plain C11 against plugin.h alone (ABI 1.2): every event goes on with one
 * header added, "c-transform: seen". The rewritten events and their header arrays are this
 * plugin's memory, handed back through release_batch: the ownership rule of the kind. */
#include <spillway/plugin.h>

#include <stdlib.h>
#include <string.h>

static const char kName[] = "c-transform", kValue[] = "seen";

typedef struct owned {
    sw_event *events;
    sw_header *headers; /* n_events rows of (the event's headers + 1) */
} owned;

static sw_status ct_create(const sw_host_api *host, sw_host_ctx *ctx, sw_instance **out) {
    (void)host;
    (void)ctx;
    *out = (sw_instance *)calloc(1, 1);
    return *out ? SW_OK : SW_FATAL;
}
static sw_status ct_start(sw_instance *self) { (void)self; return SW_OK; }
static sw_status ct_stop(sw_instance *self, int64_t timeout_ms) { (void)self; (void)timeout_ms; return SW_OK; }
static void ct_destroy(sw_instance *self) { free(self); }
static sw_status ct_health(sw_instance *self, sw_health *out) {
    (void)self;
    out->state = SW_HEALTH_UP;
    return SW_OK;
}

static sw_status ct_apply(sw_instance *self, const sw_event *events, size_t n, sw_result *results, sw_batch *out) {
    size_t i, total = 0, at = 0;
    owned *o;
    (void)self;
    for (i = 0; i < n; ++i) total += events[i].n_headers + 1;
    o = calloc(1, sizeof *o);
    if (!o) return SW_RETRY;
    o->events = calloc(n ? n : 1, sizeof *o->events);
    o->headers = calloc(total ? total : 1, sizeof *o->headers);
    if (!o->events || !o->headers) {
        free(o->events);
        free(o->headers);
        free(o);
        return SW_RETRY;
    }
    for (i = 0; i < n; ++i) {
        sw_header *h = o->headers + at;
        if (events[i].n_headers) memcpy(h, events[i].headers, events[i].n_headers * sizeof *h);
        h[events[i].n_headers].name.ptr = kName;
        h[events[i].n_headers].name.len = sizeof kName - 1;
        h[events[i].n_headers].value.ptr = kValue;
        h[events[i].n_headers].value.len = sizeof kValue - 1;
        o->events[i] = events[i];
        o->events[i].headers = h;
        o->events[i].n_headers = events[i].n_headers + 1;
        at += events[i].n_headers + 1;
        memset(&results[i], 0, sizeof results[i]);
        results[i].status = SW_OK;
        results[i].partition = -1;
        results[i].offset = -1;
    }
    out->events = o->events;
    out->n = n;
    out->plugin_data = o;
    return SW_OK;
}
static void ct_release_batch(sw_instance *self, sw_batch *batch) {
    owned *o = (owned *)batch->plugin_data;
    (void)self;
    if (o) {
        free(o->events);
        free(o->headers);
        free(o);
    }
    batch->plugin_data = NULL;
    batch->events = NULL;
    batch->n = 0;
}

static const sw_transform_vtable ct_vtable = {
    sizeof(sw_transform_vtable), ct_create, NULL, ct_start, ct_stop, ct_destroy, ct_health,
    ct_apply, ct_release_batch, {0}};

SW_PLUGIN_EXPORT const sw_plugin_descriptor *sw_plugin_entry(uint16_t host_major, uint16_t host_minor) {
    static const sw_plugin_descriptor d = {
        SW_ABI_MAGIC, sizeof(sw_plugin_descriptor), SW_ABI_MAJOR, 2, SW_KIND_TRANSFORM, "c-transform", "1.0.0",
        "adds the header c-transform: seen (C11 ABI test)", NULL, 0, &ct_vtable, SW_PLUGIN_THREAD_SAFE, 0, {0}};
    (void)host_minor;
    return host_major == SW_ABI_MAJOR ? &d : NULL;
}
