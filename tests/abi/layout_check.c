/* Pins the v1 struct layouts (x86_64 / LP64): compiled against the current plugin.h AND the frozen
 * v1.0 and v1.1 copies, so a change to any of them that moves a field fails the build. */
#include <spillway/plugin.h>

#include <stddef.h>

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(SW_ABI_MAJOR == 1, "major");
_Static_assert(sizeof(sw_bytes) == 16, "sw_bytes");
_Static_assert(sizeof(sw_header) == 32, "sw_header");
_Static_assert(offsetof(sw_event, row_id) == 8, "sw_event.row_id");
_Static_assert(offsetof(sw_event, event_id) == 16, "sw_event.event_id");
_Static_assert(offsetof(sw_event, headers) == 128, "sw_event.headers");
_Static_assert(offsetof(sw_event, created_at_us) == 144, "sw_event.created_at_us");
_Static_assert(offsetof(sw_event, last_error) == 160, "sw_event.last_error");
_Static_assert(sizeof(sw_event) == 208, "sw_event");
_Static_assert(sizeof(sw_result) == 264, "sw_result");
_Static_assert(offsetof(sw_result, message) == 24, "sw_result.message");
_Static_assert(sizeof(sw_health) == 256, "sw_health");
_Static_assert(offsetof(sw_host_api, log) == 8, "sw_host_api.log");
_Static_assert(offsetof(sw_host_api, environment) == 144, "sw_host_api.environment");
_Static_assert(sizeof(sw_host_api) == 216, "sw_host_api");
_Static_assert(sizeof(sw_option) == 32, "sw_option");
_Static_assert(offsetof(sw_sink_vtable, send) == 56, "sink.send");
_Static_assert(sizeof(sw_sink_vtable) == 104, "sink vtable");
_Static_assert(offsetof(sw_store_vtable, migrate) == 56, "store.migrate");
_Static_assert(offsetof(sw_store_vtable, purge_dead) == 136, "store.purge_dead");
#if SW_ABI_MINOR >= 2
/* 1.2: hold, pending_among and coordination fill the three reserved slots 1.0 left; sink_health and
 * three reserved slots follow. */
_Static_assert(offsetof(sw_store_vtable, hold) == 152, "store.hold");
_Static_assert(offsetof(sw_store_vtable, sink_health) == 176, "store.sink_health starts where 1.0's vtable ended");
_Static_assert(sizeof(sw_store_vtable) == 208, "store vtable");
/* 1.2: the transform kind. */
_Static_assert(SW_KIND_TRANSFORM == 5, "transform kind");
_Static_assert(offsetof(sw_transform_vtable, apply) == 56, "transform.apply");
_Static_assert(offsetof(sw_transform_vtable, release_batch) == 64, "transform.release_batch");
_Static_assert(sizeof(sw_transform_vtable) == 104, "transform vtable");
#else
_Static_assert(sizeof(sw_store_vtable) == 176, "store vtable");
#endif
_Static_assert(offsetof(sw_notifier_vtable, interrupt) == 72, "notifier.interrupt");
_Static_assert(sizeof(sw_notifier_vtable) == 112, "notifier vtable");
_Static_assert(offsetof(sw_scheduler_vtable, reset) == 64, "scheduler.reset");
_Static_assert(sizeof(sw_scheduler_vtable) == 104, "scheduler vtable");
_Static_assert(sizeof(sw_round) == 32, "sw_round");
_Static_assert(sizeof(sw_batch) == 32, "sw_batch");
_Static_assert(sizeof(sw_store_stats) == 72, "sw_store_stats");
_Static_assert(offsetof(sw_plugin_descriptor, vtable) == 56, "descriptor.vtable");
_Static_assert(sizeof(sw_plugin_descriptor) == 104, "descriptor");
#endif

int spillway_layout_check_anchor(void) { return 0; }
