/* The ABI surface of plugin.h as abidw sees it: a plugin exports only sw_plugin_entry, whose
 * descriptor reaches the vtables through `const void *`, so abidw would miss most of the contract.
 * These exported functions take every public type, so the stored baseline pins every struct,
 * enum, slot and signature, and abidiff reports any change to them by name. */
#include <spillway/plugin.h>

#define SURFACE __attribute__((visibility("default")))

SURFACE void sw_abi_common(sw_status status, sw_kind kind, sw_log_level level, sw_health_state state,
                           sw_option_type type, sw_wake_cause cause) {
    (void)status, (void)kind, (void)level, (void)state, (void)type, (void)cause;
}
SURFACE void sw_abi_data(const sw_event *event, const sw_header *header, const sw_result *result,
                         const sw_health *health, const sw_batch *batch, const sw_store_stats *stats,
                         const sw_round *round) {
    (void)event, (void)header, (void)result, (void)health, (void)batch, (void)stats, (void)round;
}
SURFACE void sw_abi_host(const sw_host_api *host, sw_config_visit_fn config_visit, sw_key_visit_fn key_visit) {
    (void)host, (void)config_visit, (void)key_visit;
}
SURFACE void sw_abi_vtables(const sw_sink_vtable *sink, const sw_store_vtable *store,
                            const sw_notifier_vtable *notifier, const sw_scheduler_vtable *scheduler) {
    (void)sink, (void)store, (void)notifier, (void)scheduler;
}
SURFACE void sw_abi_plugin(const sw_plugin_descriptor *descriptor, const sw_option *option, sw_plugin_entry_fn entry) {
    (void)descriptor, (void)option, (void)entry;
}
/* ABI 1.2: the transform kind, an addition (the functions above keep their signatures). */
SURFACE void sw_abi_transform(const sw_transform_vtable *transform) { (void)transform; }
