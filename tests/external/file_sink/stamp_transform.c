/* A transform in plain C11, out of tree, against the installed plugin.h alone (ABI 1.2): every
 * event goes on with one header more, `stamp: <the option value>`. The rewritten events and their
 * header arrays belong to the plugin until the host hands them back through release_batch. */
#include <spillway/plugin.h>

#include <stdlib.h>
#include <string.h>

static const char kHeader[] = "stamp";

typedef struct stamp {
    const char *value; /* the host's string: valid until destroy */
} stamp;

typedef struct stamped {
    sw_event *events;
    sw_header *headers;
} stamped;

static sw_status stamp_create(const sw_host_api *host, sw_host_ctx *ctx, sw_instance **out) {
    stamp *s = calloc(1, sizeof *s);
    if (!s) return SW_FATAL;
    if (host->config_string(ctx, "value", &s->value) != SW_OK || !s->value) {
        host->config_error(ctx, "value", "required: the text of the stamp header");
        free(s);
        return SW_INVALID_CONFIG;
    }
    *out = (sw_instance *)s;
    return SW_OK;
}
static sw_status stamp_start(sw_instance *self) { (void)self; return SW_OK; }
static sw_status stamp_stop(sw_instance *self, int64_t timeout_ms) { (void)self; (void)timeout_ms; return SW_OK; }
static void stamp_destroy(sw_instance *self) { free(self); }
static sw_status stamp_health(sw_instance *self, sw_health *out) {
    (void)self;
    out->state = SW_HEALTH_UP;
    return SW_OK;
}

static sw_status stamp_apply(sw_instance *self, const sw_event *events, size_t n, sw_result *results,
                             sw_batch *out) {
    const stamp *s = (const stamp *)self;
    size_t i, total = 0, at = 0;
    stamped *b = calloc(1, sizeof *b);
    if (!b) return SW_RETRY;
    for (i = 0; i < n; ++i) total += events[i].n_headers + 1;
    b->events = calloc(n ? n : 1, sizeof *b->events);
    b->headers = calloc(total ? total : 1, sizeof *b->headers);
    if (!b->events || !b->headers) {
        free(b->events);
        free(b->headers);
        free(b);
        return SW_RETRY;
    }
    for (i = 0; i < n; ++i) {
        sw_header *h = b->headers + at;
        const size_t k = events[i].n_headers;
        if (k) memcpy(h, events[i].headers, k * sizeof *h);
        h[k].name.ptr = kHeader;
        h[k].name.len = sizeof kHeader - 1;
        h[k].value.ptr = s->value;
        h[k].value.len = strlen(s->value);
        b->events[i] = events[i];
        b->events[i].headers = h;
        b->events[i].n_headers = k + 1;
        at += k + 1;
        memset(&results[i], 0, sizeof results[i]);
        results[i].status = SW_OK;
        results[i].partition = -1;
        results[i].offset = -1;
    }
    out->events = b->events;
    out->n = n;
    out->plugin_data = b;
    return SW_OK;
}
static void stamp_release_batch(sw_instance *self, sw_batch *batch) {
    stamped *b = (stamped *)batch->plugin_data;
    (void)self;
    if (b) {
        free(b->events);
        free(b->headers);
        free(b);
    }
    batch->plugin_data = NULL;
    batch->events = NULL;
    batch->n = 0;
}

static const sw_transform_vtable stamp_vtable = {
    sizeof(sw_transform_vtable), stamp_create, NULL, stamp_start, stamp_stop, stamp_destroy, stamp_health,
    stamp_apply, stamp_release_batch, {0}};

static const sw_option stamp_options[] = {
    {"value", SW_OPT_STRING, SW_OPT_REQUIRED, NULL, "the text of the `stamp` header every event gets"},
};

SW_PLUGIN_EXPORT const sw_plugin_descriptor *sw_plugin_entry(uint16_t host_major, uint16_t host_minor) {
    static const sw_plugin_descriptor d = {
        SW_ABI_MAGIC, sizeof(sw_plugin_descriptor), SW_ABI_MAJOR, 2, SW_KIND_TRANSFORM, "stamp", "1.0.0",
        "adds the header stamp: <value> to every event (an out-of-tree transform in C)", stamp_options, 1,
        &stamp_vtable, SW_PLUGIN_THREAD_SAFE, 0, {0}};
    return host_major == SW_ABI_MAJOR && host_minor >= 2 ? &d : NULL;
}
