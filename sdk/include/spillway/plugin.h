/*
 * spillway/plugin.h — the stable C ABI between the Spillway engine (host) and its plugins.
 *
 * This header is the only contract between the two sides. It is plain C (C11 and C++20 clean),
 * carries no exceptions and no C++ types, and evolves append-only:
 *   - SW_ABI_MAJOR changes only on a break; the host refuses any other major.
 *   - SW_ABI_MINOR grows when slots are appended; a plugin states the minor it needs and the host
 *     refuses a plugin that needs a newer minor than its own.
 *   - Every struct that can grow starts with `struct_size`; readers ignore trailing fields they do
 *     not know and treat missing trailing slots as "not supported".
 *
 * Ownership: a span (sw_bytes) handed across a call is borrowed for the duration of that call only.
 * Memory is freed by the side that allocated it (see sw_store_vtable.release_batch).
 *
 * Threading: the host may call one instance from several threads at once only when the descriptor
 * sets SW_PLUGIN_THREAD_SAFE; otherwise it serialises calls per instance. `notifier.interrupt` is the
 * exception: it may always be called from another thread while `wait` blocks.
 */
#ifndef SPILLWAY_PLUGIN_H
#define SPILLWAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_ABI_MAGIC 0x53574C31u /* "SWL1" */
#define SW_ABI_MAJOR 1
#define SW_ABI_MINOR 2
#define SW_ENTRY_SYMBOL "sw_plugin_entry"

#if defined(_WIN32)
#define SW_PLUGIN_EXPORT __declspec(dllexport)
#else
#define SW_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Every call across the boundary returns one of these. */
typedef enum sw_status {
    SW_OK = 0,
    SW_RETRY = 1,          /* transient: the host backs off and tries again                    */
    SW_REJECT = 2,         /* permanent for this event (poison): it goes to the dead letters   */
    SW_FATAL = 3,          /* the instance is unusable: the host stops and rebuilds it         */
    SW_INVALID_CONFIG = 4, /* the configuration cannot work; details via host->config_error    */
    SW_UNSUPPORTED = 5,    /* the plugin does not implement this operation                     */
    SW_FULL = 6            /* a bound is reached (store backlog over max_pending)              */
} sw_status;

typedef enum sw_kind {
    SW_KIND_SINK = 1,
    SW_KIND_STORE = 2,
    SW_KIND_NOTIFIER = 3,
    SW_KIND_SCHEDULER = 4,
    SW_KIND_TRANSFORM = 5  /* ABI 1.2 */
} sw_kind;

typedef enum sw_log_level {
    SW_LOG_TRACE = 0,
    SW_LOG_DEBUG = 1,
    SW_LOG_INFO = 2,
    SW_LOG_WARN = 3,
    SW_LOG_ERROR = 4
} sw_log_level;

/* A borrowed byte span. ptr == NULL means "absent" (distinct from present-but-empty). */
typedef struct sw_bytes {
    const char *ptr;
    size_t len;
} sw_bytes;

typedef struct sw_header {
    sw_bytes name;
    sw_bytes value;
} sw_header;

/* sw_event.flags */
#define SW_EVENT_PAYLOAD_BINARY 0x1u /* payload is opaque bytes, not JSON text */

/* One domain event. Read-only to the receiver; every span is borrowed for the call. */
typedef struct sw_event {
    uint32_t struct_size;
    uint32_t flags;           /* SW_EVENT_* */
    int64_t row_id;           /* store row id; 0 when the event did not come from a store      */
    sw_bytes event_id;        /* stable across retries and paths: the consumer's dedupe key     */
    sw_bytes pipeline;        /* name of the pipeline that accepted it                           */
    sw_bytes topic;
    sw_bytes key;             /* partitioning and ordering key; absent = no key                  */
    sw_bytes payload;
    sw_bytes event_type;      /* optional                                                        */
    sw_bytes correlation_id;  /* optional                                                        */
    const sw_header *headers; /* user headers */
    size_t n_headers;
    int64_t created_at_us;    /* unix epoch microseconds, set when the engine accepted it        */
    int32_t attempts;         /* delivery attempts so far (from the store)                       */
    int32_t reserved0;
    sw_bytes last_error;      /* from the store: the last failure, for dead letters              */
    void *reserved[4];
} sw_event;

/* sw_result.flags */
#define SW_RESULT_POSSIBLY_DELIVERED 0x1u /* a RETRY that may have reached Kafka (timeout etc.) */
#define SW_RESULT_DUPLICATE 0x2u          /* store append: event_id already present, no new row */
#define SW_RESULT_DROPPED 0x4u            /* transform (ABI 1.2): with OK, the event goes no further */

/* The outcome for one event of a batch, filled by the plugin. */
typedef struct sw_result {
    int32_t status;     /* sw_status */
    uint32_t flags;     /* SW_RESULT_* */
    int32_t partition;  /* sink: where it landed, -1 if unknown */
    int32_t reserved0;
    int64_t offset;     /* sink: offset, -1 if unknown */
    char message[240];  /* NUL-terminated reason for a non-OK status (truncated if longer) */
} sw_result;

/*
 * The health contract. What a sink's health makes the engine do:
 *   UP        sends go direct; an open circuit half-opens at once (the outbox drains first).
 *   DEGRADED, UNKNOWN
 *             nothing by itself: the circuit opens after consecutive failed direct sends, and
 *             while it is open the relay probes with one outbox event every 250 ms.
 *   DOWN      the circuit opens at once: publishers spill to the outbox, and nothing is sent to
 *             the sink except a trial of one outbox event after 1 s, 2 s, 4 s, then every 5 s.
 *             A trial (or any send) that delivers outranks the health: the circuit half-opens
 *             and the engine disregards this DOWN until the sink reports another state or a send
 *             fails outright.
 * So a sink must fill every result truthfully; it need not watch its destination for recovery
 * (the trial finds it), but may, and report UP sooner (the kafka sink does, from librdkafka's
 * broker state). health is read often (every 20 ms while DOWN): answer from memory.
 */
typedef enum sw_health_state {
    SW_HEALTH_UNKNOWN = 0,
    SW_HEALTH_UP = 1,
    SW_HEALTH_DEGRADED = 2,
    SW_HEALTH_DOWN = 3 /* e.g. all Kafka brokers down, database unreachable */
} sw_health_state;

typedef struct sw_health {
    uint32_t struct_size;
    int32_t state;       /* sw_health_state */
    int64_t since_us;    /* monotonic microseconds when this state began, 0 if unknown */
    char message[240];
} sw_health;

/* Opaque handles. */
typedef struct sw_instance sw_instance; /* plugin-owned, one per configured component */
typedef struct sw_host_ctx sw_host_ctx; /* host-owned, one per instance; valid until destroy returns */

typedef void (*sw_config_visit_fn)(void *user, const char *key, const char *value);

/*
 * Services the host offers a plugin. Append-only: check struct_size before using a slot added after
 * the minor you were built against. Every function may be called from any thread.
 */
typedef struct sw_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    void (*log)(sw_host_ctx *ctx, sw_log_level level, const char *message);
    /* Records the reason for the non-OK status about to be returned; the host copies it. */
    void (*set_error)(sw_host_ctx *ctx, const char *message);
    /* Blames one configuration key: the host reports it with the key's file:line:column. */
    void (*config_error)(sw_host_ctx *ctx, const char *key, const char *message);

    /* Typed configuration, already validated against the option table (defaults applied).
     * Return SW_OK, or SW_UNSUPPORTED when the key is absent and has no default.
     * Strings stay valid until destroy returns. */
    sw_status (*config_string)(sw_host_ctx *ctx, const char *key, const char **out);
    sw_status (*config_int)(sw_host_ctx *ctx, const char *key, int64_t *out);
    sw_status (*config_double)(sw_host_ctx *ctx, const char *key, double *out);
    sw_status (*config_bool)(sw_host_ctx *ctx, const char *key, int *out);
    sw_status (*config_duration_ms)(sw_host_ctx *ctx, const char *key, int64_t *out);
    /* SW_OPT_STRING_LIST: the number of items, and item i. */
    sw_status (*config_list_size)(sw_host_ctx *ctx, const char *key, size_t *out);
    sw_status (*config_list_item)(sw_host_ctx *ctx, const char *key, size_t index, const char **out);
    /* Every key of the component's table (declared and, with SW_PLUGIN_OPEN_OPTIONS, undeclared),
     * values rendered as strings. */
    void (*config_each)(sw_host_ctx *ctx, sw_config_visit_fn visit, void *user);

    /* Metrics. `labels` is NULL or "k1=v1,k2=v2". The host prefixes names with spillway_. */
    void (*metric_add)(sw_host_ctx *ctx, const char *name, const char *labels, double delta);
    void (*metric_set)(sw_host_ctx *ctx, const char *name, const char *labels, double value);
    void (*metric_observe)(sw_host_ctx *ctx, const char *name, const char *labels, double value);

    int64_t (*now_unix_us)(sw_host_ctx *ctx);
    int64_t (*monotonic_us)(sw_host_ctx *ctx);
    const char *(*instance_name)(sw_host_ctx *ctx); /* "<kind>.<instance>" as in the config */
    const char *(*environment)(sw_host_ctx *ctx);   /* testing, development, staging, production */

    void *reserved[8];
} sw_host_api;

/* Option types of the config schema. */
typedef enum sw_option_type {
    SW_OPT_STRING = 1,
    SW_OPT_INT = 2,
    SW_OPT_DOUBLE = 3,
    SW_OPT_BOOL = 4,
    SW_OPT_DURATION = 5,   /* "250ms", "1.5s", "2m", or an integer of milliseconds */
    SW_OPT_STRING_LIST = 6
} sw_option_type;

/* sw_option.flags */
#define SW_OPT_REQUIRED 0x1u
#define SW_OPT_SECRET 0x2u /* never printed (validate, plugin-info, logs) */

/* An option's name names one key, or (ABI 1.2) a family of keys when it ends in ".*": the row
 * `columns.headers.*` types and documents `columns.headers.aggregatetype` and every other key that
 * starts with `columns.headers.` (a TOML table [x.columns.headers] of them). The plugin reads a
 * family's keys with config_each. A family row is never required and has no default. */
typedef struct sw_option {
    const char *name;
    uint32_t type;             /* sw_option_type */
    uint32_t flags;            /* SW_OPT_* */
    const char *default_value; /* as TOML would spell it; NULL = no default */
    const char *description;
} sw_option;

/* Whether `key` is the key `option_name` declares, or one of its family (see sw_option). */
static inline int sw_option_matches(const char *option_name, const char *key) {
    size_t n = 0;
    while (option_name[n]) ++n;
    if (n >= 2 && option_name[n - 2] == '.' && option_name[n - 1] == '*') {
        size_t i = 0;
        for (; i < n - 1; ++i)
            if (key[i] != option_name[i]) return 0; /* a shorter key stops at its NUL here */
        return key[n - 1] != '\0';
    }
    for (size_t i = 0;; ++i) {
        if (option_name[i] != key[i]) return 0;
        if (!key[i]) return 1;
    }
}

/* Slots every kind's vtable begins with. */
#define SW_VTABLE_COMMON                                                                      \
    uint32_t struct_size;                                                                     \
    /* Build an instance from the (validated) config. Must not connect or block for long. */  \
    sw_status (*create)(const sw_host_api *host, sw_host_ctx *ctx, sw_instance **out);        \
    /* Optional deeper check than the option table (e.g. pass-through keys). NULL = none. */  \
    sw_status (*validate)(const sw_host_api *host, sw_host_ctx *ctx);                         \
    sw_status (*start)(sw_instance *self);                                                    \
    /* Drain or flush within timeout_ms, then release external resources. */                 \
    sw_status (*stop)(sw_instance *self, int64_t timeout_ms);                                 \
    void (*destroy)(sw_instance *self);                                                       \
    sw_status (*health)(sw_instance *self, sw_health *out)

/* The common slots as a type of their own: what a host reads of any kind's vtable (each one
 * begins with SW_VTABLE_COMMON, so its first members are laid out exactly like this). */
typedef struct sw_vtable_common {
    SW_VTABLE_COMMON;
} sw_vtable_common;

/* Sink: sends events to their destination (Kafka). */
typedef struct sw_sink_vtable {
    SW_VTABLE_COMMON;
    /* Send n events and wait, at most timeout_ms, for each one's delivery report. Fill
     * results[i] for every event: OK only when the destination acknowledged it. Returns OK when
     * every result was filled (whatever they say), FATAL when the instance must be rebuilt. */
    sw_status (*send)(sw_instance *self, const sw_event *events, size_t n, sw_result *results,
                      int64_t timeout_ms);
    sw_status (*flush)(sw_instance *self, int64_t timeout_ms);
    void *reserved[4];
} sw_sink_vtable;

/* A batch owned by the store plugin, handed back through release_batch. */
typedef struct sw_batch {
    uint32_t struct_size;
    const sw_event *events;
    size_t n;
    void *plugin_data; /* the plugin's bookkeeping; the host never touches it */
} sw_batch;

typedef struct sw_store_stats {
    uint32_t struct_size;
    int64_t pending;            /* rows waiting, including leased ones */
    int64_t leased;             /* rows currently claimed under a live lease */
    int64_t dead;
    int64_t oldest_pending_age_ms; /* 0 when nothing is pending */
    int64_t reserved[4];
} sw_store_stats;

typedef void (*sw_key_visit_fn)(void *user, sw_bytes key);

/* How an engine runs a pipeline, for sw_store_vtable.hold. */
typedef enum sw_hold_mode {
    SW_HOLD_SHARED = 1,    /* coordination "single", outbox-first: any number of engines at once */
    SW_HOLD_EXCLUSIVE = 2, /* coordination "single", direct-first: this engine only (another's
                            * direct sends would overtake the rows this one spilled)            */
    SW_HOLD_SHARDS = 3     /* coordination "shards": engines split the pipeline's rows by shard
                            * of the key; claim and claim_next hand out only rows of the shards
                            * this instance owns now; pending_among keeps direct sends in order */
} sw_hold_mode;

/* Store: the durable outbox. */
typedef struct sw_store_vtable {
    SW_VTABLE_COMMON;
    /* Create or upgrade the schema; idempotent. On OK the store may leave, through the host's
     * set_error, a report of what it did (one step a line, those of an auto-migrating start
     * included); no message means nothing was done. */
    sw_status (*migrate)(sw_instance *self);
    /* Append n events in one transaction. results[i].flags gets SW_RESULT_DUPLICATE for an
     * event_id already stored. SW_FULL when the pipeline's backlog bound would be passed
     * (then nothing of the batch is stored). */
    sw_status (*append)(sw_instance *self, const sw_event *events, size_t n, sw_result *results);
    /* Lease up to `limit` due pending rows of `pipeline` for lease_ms, oldest first, never a row
     * while an earlier pending row of its key is unclaimed or leased to someone else. */
    sw_status (*claim)(sw_instance *self, const char *pipeline, size_t limit, int64_t lease_ms,
                       sw_batch *out);
    void (*release_batch)(sw_instance *self, sw_batch *batch);
    /* Settle claimed rows: OK deletes (or marks published), RETRY backs off, REJECT moves to
     * dead. results[i].message is kept as last_error. */
    sw_status (*complete)(sw_instance *self, const int64_t *row_ids, const sw_result *results,
                          size_t n);
    /* Give leases back without counting an attempt (clean shutdown). */
    sw_status (*release_leases)(sw_instance *self, const int64_t *row_ids, size_t n);
    /* pipeline "*" (never a pipeline name): the whole table, whatever pipeline rows name. */
    sw_status (*stats)(sw_instance *self, const char *pipeline, sw_store_stats *out);
    /* Visit the key of every pending row (leased and backing-off ones included), once per row:
     * the host counts the visits and keeps a key on the outbox path until that many of its rows
     * are settled (seeds the publisher's sticky keys at start). */
    sw_status (*pending_keys)(sw_instance *self, const char *pipeline, sw_key_visit_fn visit,
                              void *user);
    /* Dead letters: list (after_row_id paging), replay to pending (same event_id), purge.
     * event_ids == NULL with n == 0 means "all of the pipeline". */
    sw_status (*list_dead)(sw_instance *self, const char *pipeline, int64_t after_row_id,
                           size_t limit, sw_batch *out);
    sw_status (*replay_dead)(sw_instance *self, const char *pipeline, const sw_bytes *event_ids,
                             size_t n, int64_t *replayed);
    sw_status (*purge_dead)(sw_instance *self, const char *pipeline, const sw_bytes *event_ids,
                            size_t n, int64_t *purged);
    /* ABI 1.1, optional (NULL: the relay claims one batch at a time). Lease up to `limit` rows of
     * prev's pipeline as claim would once every row of `prev` were settled OK, while prev is still
     * out: prev's rows hold no key back and are not claimed again, nor are those of the batch
     * prev itself followed (when claim_next made prev: the relay may be settling it meanwhile);
     * anything else that holds a key back still does. `prev` is a batch this instance handed out
     * through claim or claim_next (possibly empty) and has not released. It lets the relay claim
     * the next batch while the last one is being sent; the relay sends the new batch only once
     * prev's results are in, and gives back (release_leases) its events of any key prev failed
     * to deliver, so order per key holds. */
    sw_status (*claim_next)(sw_instance *self, const sw_batch *prev, size_t limit, int64_t lease_ms,
                            sw_batch *out);
    /* ABI 1.2, optional (NULL: the host cannot keep a second engine off a pipeline, and warns).
     * Mark `pipeline` of this outbox as run by this instance, in `mode` (sw_hold_mode), until stop
     * or destroy; `member` names this engine among the others (unique per live engine). Every
     * engine of any process on the same outbox sees the hold. SW_REJECT when another holder's
     * mode conflicts, with a message naming it; SW_INVALID_CONFIG when the store cannot run the
     * mode (SQLite: shards); SW_RETRY when the store cannot tell now. */
    sw_status (*hold)(sw_instance *self, const char *pipeline, uint32_t mode, const char *member);
    /* ABI 1.2, optional (needed for SW_HOLD_SHARDS). found[i] = 1 when `pipeline` has a pending
     * row (leased or backing off included) whose key is keys[i], else 0, read from committed
     * data on the primary at the time of the call: a keyed event may go to the sink directly
     * only while no earlier event of its key waits in the outbox, whichever engine spilled it. */
    sw_status (*pending_among)(sw_instance *self, const char *pipeline, const sw_bytes *keys, size_t n,
                               uint8_t *found);
    /* ABI 1.2, optional. One JSON object describing how `pipeline` is coordinated (mode, this
     * member, members, shard owners, epochs, lease deadlines), passed to `visit` once. */
    sw_status (*coordination)(sw_instance *self, const char *pipeline, sw_key_visit_fn visit, void *user);
    /* ABI 1.2, optional. The health (sw_health_state) of the sink `pipeline` sends to, told when it
     * changes: with SW_HOLD_SHARDS, a member whose sink stays down gives its shards to members
     * whose sink works, rather than holding their rows back. */
    sw_status (*sink_health)(sw_instance *self, const char *pipeline, int32_t state);
    void *reserved[3];
} sw_store_vtable;

/* Notifier: the relay's doorbell. A doorbell is a hint; the relay always re-reads the store. */
typedef struct sw_notifier_vtable {
    SW_VTABLE_COMMON;
    /* Ring the bell of `channel` (a pipeline name). Fails fast; never blocks on a dead backend. */
    sw_status (*notify)(sw_instance *self, const char *channel);
    /* Block up to timeout_ms for a ring on `channel`. *woken = 1 when rung, 0 on timeout or
     * interrupt. RETRY when the backend is unavailable (after waiting out the timeout). */
    sw_status (*wait)(sw_instance *self, const char *channel, int64_t timeout_ms, int *woken);
    /* Make every current and next wait return soon (shutdown). Callable from any thread. */
    void (*interrupt)(sw_instance *self);
    void *reserved[4];
} sw_notifier_vtable;

typedef enum sw_wake_cause {
    SW_WAKE_START = 0,
    SW_WAKE_DOORBELL = 1,
    SW_WAKE_TIMER = 2
} sw_wake_cause;

/* What the relay's last round found. */
typedef struct sw_round {
    uint32_t struct_size;
    int32_t status;  /* sw_status of the round: OK, or RETRY/FATAL on a store or sink error */
    int32_t cause;   /* sw_wake_cause */
    int32_t reserved0;
    uint64_t claimed; /* rows claimed this round */
    uint64_t limit;   /* the batch limit */
} sw_round;

/* Scheduler: decides how long the relay waits before the next round. */
typedef struct sw_scheduler_vtable {
    SW_VTABLE_COMMON;
    /* *delay_ms = 0 means "go again now". */
    sw_status (*next_delay)(sw_instance *self, const sw_round *round, int64_t *delay_ms);
    void (*reset)(sw_instance *self);
    void *reserved[4];
} sw_scheduler_vtable;

/*
 * Transform (ABI 1.2): rewrites events on their way to the sink. A pipeline's transforms run on
 * every path to the sink (direct sends and the relay's), immediately before the send, in the order
 * the pipeline lists them; the outbox keeps each event as it was accepted. A transform must
 * therefore be a pure function of the event and its configuration: an event sent again (a retry,
 * a relay after an outage) must become the same record.
 */
typedef struct sw_transform_vtable {
    SW_VTABLE_COMMON;
    /* Rewrite n events. Fill results[i] for every event:
     *   OK                        out->events[i] is the event as it goes on;
     *   OK + SW_RESULT_DROPPED    the event goes no further; the host counts and logs it, and
     *                             settles it as delivered;
     *   REJECT, with the reason   the event cannot become a record (a template names a field it
     *                             lacks): refused, or dead-lettered, as the pipeline's on_reject says.
     * out->events holds n events in the order of `events`. Of each, the host takes topic, key,
     * payload, flags, event_type, correlation_id and headers; event_id, row_id, pipeline,
     * created_at_us and attempts stay the host's. A span in out may point into `events` (held by
     * the host until release_batch) or into the plugin's memory (kept until release_batch).
     * Any status but OK fails the whole batch: every event is retried later with set_error's reason. */
    sw_status (*apply)(sw_instance *self, const sw_event *events, size_t n, sw_result *results, sw_batch *out);
    void (*release_batch)(sw_instance *self, sw_batch *batch);
    void *reserved[4];
} sw_transform_vtable;

/* sw_plugin_descriptor.flags */
#define SW_PLUGIN_THREAD_SAFE 0x1u  /* calls on one instance may overlap */
#define SW_PLUGIN_OPEN_OPTIONS 0x2u /* keys beyond the option table are allowed (pass-through) */

typedef struct sw_plugin_descriptor {
    uint32_t magic;       /* SW_ABI_MAGIC */
    uint32_t struct_size; /* sizeof(sw_plugin_descriptor) as the plugin was built */
    uint16_t abi_major;   /* must equal the host's */
    uint16_t abi_minor;   /* the minor this plugin needs: at most the host's */
    uint32_t kind;        /* sw_kind */
    const char *name;     /* unique per kind, e.g. "kafka" */
    const char *version;
    const char *description;
    const sw_option *options;
    size_t n_options;
    const void *vtable;   /* sw_sink_vtable*, sw_store_vtable*, ... per kind */
    uint32_t flags;       /* SW_PLUGIN_* */
    uint32_t reserved0;
    void *reserved[4];
} sw_plugin_descriptor;

/* The one exported symbol. Returns a static descriptor, or NULL when it cannot run on this host.
 * Never throws, never blocks. */
typedef const sw_plugin_descriptor *(*sw_plugin_entry_fn)(uint16_t host_abi_major,
                                                          uint16_t host_abi_minor);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SPILLWAY_PLUGIN_H */
