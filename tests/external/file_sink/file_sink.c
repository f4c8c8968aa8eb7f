/* spillway-cfile: the example file sink in plain C against plugin.h alone. Without
 * SW_PLUGIN_THREAD_SAFE the host serialises calls per instance, so no lock is needed. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <spillway/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sw_instance {
    const sw_host_api *host;
    sw_host_ctx *ctx;
    char *path;
    FILE *out;
};

static void put_json(FILE *f, sw_bytes b) { /* a JSON string, or null when absent */
    if (!b.ptr) { fputs("null", f); return; }
    fputc('"', f);
    for (size_t i = 0; i < b.len; ++i) {
        unsigned char c = (unsigned char)b.ptr[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static sw_status create(const sw_host_api *host, sw_host_ctx *ctx, sw_instance **out) {
    const char *path = NULL;
    *out = NULL;
    if (host->config_string(ctx, "path", &path) != SW_OK || !path || !*path) {
        host->config_error(ctx, "path", "must name a file");
        return SW_INVALID_CONFIG;
    }
    sw_instance *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) { free(self); return SW_FATAL; }
    self->host = host;
    self->ctx = ctx;
    *out = self;
    return SW_OK;
}

static sw_status start(sw_instance *self) {
    if ((self->out = fopen(self->path, "a"))) return SW_OK;
    self->host->set_error(self->ctx, "cannot open the file");
    return SW_RETRY;
}

static sw_status stop(sw_instance *self, int64_t timeout_ms) {
    (void)timeout_ms;
    if (self->out) fclose(self->out);
    self->out = NULL;
    return SW_OK;
}

static void destroy(sw_instance *self) {
    stop(self, 0);
    free(self->path);
    free(self);
}

static sw_status health(sw_instance *self, sw_health *out) {
    out->state = self->out && !ferror(self->out) ? SW_HEALTH_UP : SW_HEALTH_DOWN;
    return SW_OK;
}

static sw_status send(sw_instance *self, const sw_event *events, size_t n, sw_result *results, int64_t timeout_ms) {
    (void)timeout_ms;
    for (size_t i = 0; i < n; ++i) {
        fputs("{\"event_id\":", self->out); put_json(self->out, events[i].event_id);
        fputs(",\"topic\":", self->out);    put_json(self->out, events[i].topic);
        fputs(",\"key\":", self->out);      put_json(self->out, events[i].key);
        fputs(",\"payload\":", self->out);  put_json(self->out, events[i].payload);
        fputs("}\n", self->out);
    }
    const int ok = fflush(self->out) == 0 && !ferror(self->out);
    for (size_t i = 0; i < n; ++i) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].status = ok ? SW_OK : SW_RETRY;
        results[i].partition = -1;
        results[i].offset = -1;
        if (!ok) snprintf(results[i].message, sizeof results[i].message, "write failed");
    }
    self->host->metric_add(self->ctx, "file_sink_events_total", ok ? "result=ok" : "result=retry", (double)n);
    return SW_OK;
}

static sw_status flush(sw_instance *self, int64_t timeout_ms) {
    (void)timeout_ms;
    return self->out && fflush(self->out) == 0 ? SW_OK : SW_RETRY;
}

static const sw_sink_vtable vtable = {
    sizeof(sw_sink_vtable), create, NULL, start, stop, destroy, health, send, flush, {0}};

static const sw_option options[] = {
    {"path", SW_OPT_STRING, SW_OPT_REQUIRED, NULL, "The file events are appended to"}};

static const sw_plugin_descriptor descriptor = {
    SW_ABI_MAGIC, sizeof(sw_plugin_descriptor), SW_ABI_MAJOR, SW_ABI_MINOR, SW_KIND_SINK, "cfile", "1.0.0",
    "Appends each event as a JSON line to a file (C example)", options, 1, &vtable, 0, 0, {0}};

SW_PLUGIN_EXPORT const sw_plugin_descriptor *sw_plugin_entry(uint16_t host_abi_major, uint16_t host_abi_minor) {
    (void)host_abi_minor;
    return host_abi_major == SW_ABI_MAJOR ? &descriptor : NULL;
}
