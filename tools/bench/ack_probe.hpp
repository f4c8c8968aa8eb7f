// The moment Kafka acknowledged an event, seen from inside the engine's producer without touching
// the engine: a librdkafka plugin (libspillway_bench_probe.so) that the kafka sink loads through
// its pass-through property `plugin.library.paths`. Its on_acknowledgement interceptor runs on the
// broker thread as the produce response is handled, before the delivery report is dispatched, and
// reports the record's event_id header with the steady-clock time.
//
// The bench links the same library, so the copy librdkafka dlopens is the one it talks to.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
// Called for every successfully acknowledged record that carries an event_id header.
// `ack_ns` is std::chrono::steady_clock time since its epoch. Runs on librdkafka's broker threads.
typedef void (*spillway_bench_ack_fn)(const char* event_id, size_t len, int64_t ack_ns, void* user);
// Installs (or, with NULL, removes) the callback; safe while producers run.
void spillway_bench_probe_set(spillway_bench_ack_fn fn, void* user);
// Path of the probe library, for `plugin.library.paths`.
const char* spillway_bench_probe_path(void);
}
