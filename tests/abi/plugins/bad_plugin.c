/* Deliberately broken plugins, one per define, each of which the host must refuse with a message
 * naming the file and the reason. */
#include <spillway/plugin.h>

#include <stddef.h>

static sw_status bad_create(const sw_host_api *h, sw_host_ctx *c, sw_instance **out) {
    (void)h;
    (void)c;
    *out = NULL;
    return SW_FATAL;
}
static sw_status bad_start(sw_instance *s) { (void)s; return SW_OK; }
static sw_status bad_stop(sw_instance *s, int64_t t) { (void)s; (void)t; return SW_OK; }
static void bad_destroy(sw_instance *s) { (void)s; }

static const sw_notifier_vtable bad_vtable = {
#if defined(BAD_SMALL_VTABLE)
    8,
#else
    sizeof(sw_notifier_vtable),
#endif
    bad_create, NULL, bad_start, bad_stop, bad_destroy, NULL, NULL, NULL, NULL, {0}};

#if defined(BAD_MAGIC)
#define D_MAGIC 0xdeadbeefu
#else
#define D_MAGIC SW_ABI_MAGIC
#endif
#if defined(BAD_MAJOR)
#define D_MAJOR (SW_ABI_MAJOR + 1)
#else
#define D_MAJOR SW_ABI_MAJOR
#endif
#if defined(BAD_MINOR)
#define D_MINOR (SW_ABI_MINOR + 1)
#else
#define D_MINOR SW_ABI_MINOR
#endif
#if defined(BAD_KIND)
#define D_KIND 42
#else
#define D_KIND SW_KIND_NOTIFIER
#endif

static const sw_plugin_descriptor bad_descriptor = {
    D_MAGIC, sizeof(sw_plugin_descriptor), D_MAJOR, D_MINOR, D_KIND, "bad", "0.0.1",
    "a broken plugin", NULL, 0, &bad_vtable, 0, 0, {0}};

#if defined(BAD_NO_ENTRY)
/* The entry under the wrong name: the host must not find sw_plugin_entry. */
SW_PLUGIN_EXPORT const sw_plugin_descriptor *sw_plugin_entry_v2(uint16_t major, uint16_t minor) {
    (void)major;
    (void)minor;
    return &bad_descriptor;
}
#else
SW_PLUGIN_EXPORT const sw_plugin_descriptor *sw_plugin_entry(uint16_t major, uint16_t minor) {
    (void)major;
    (void)minor;
#if defined(BAD_NULL)
    (void)bad_descriptor;
    return NULL;
#else
    return &bad_descriptor;
#endif
}
#endif
