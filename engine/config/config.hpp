// The pipeline configuration as plain structs: what config/load.cpp makes of a TOML file after
// environment overlays and ${VAR} interpolation. Nothing outside engine/config sees toml++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace spillway::config {

// Where a value came from, for messages: "file:line:col".
struct Location {
    std::string file;
    uint32_t line = 0;
    uint32_t column = 0;
    std::string str() const;
};

// One problem, reported as "file:line:col: key.path: message".
struct Diagnostic {
    Location where;
    std::string key_path;
    std::string message;
    std::string str() const;
};

// Thrown when a configuration has errors; what() lists every diagnostic, one per line.
class ConfigError : public std::runtime_error {
public:
    explicit ConfigError(std::vector<Diagnostic> diagnostics);
    const std::vector<Diagnostic>& diagnostics() const noexcept { return diagnostics_; }

private:
    std::vector<Diagnostic> diagnostics_;
};

using List = std::vector<std::string>;

// A component option as written (after interpolation); typed against the plugin's option table
// later, by engine/plugin/binding.cpp.
struct Value {
    std::variant<std::string, int64_t, double, bool, List> data;
    Location where;
    bool from_env = false;  // built from ${VAR}: redacted when printed
    bool interpolated = false;  // written with ${VAR} (its default included): may be typed from text

    bool is_string() const { return std::holds_alternative<std::string>(data); }
    std::string render() const;  // TOML spelling, e.g. "\"text\"", 42, true, ["a", "b"]
};

// The kinds every pipeline names one instance of.
inline constexpr const char* kKinds[] = {"sink", "store", "notifier", "scheduler"};
// Every kind a [<kind>.<instance>] table may define: a pipeline names transforms in a list.
inline constexpr const char* kComponentKinds[] = {"sink", "store", "notifier", "scheduler", "transform"};
inline constexpr const char* kEnvironments[] = {"testing", "development", "staging", "production"};

// [<kind>.<instance>]
struct Component {
    std::string kind;      // sink | store | notifier | scheduler | transform
    std::string name;      // instance name
    std::string plugin;    // plugin name (the `plugin` key)
    Location where;        // the table header
    Location plugin_where; // the `plugin` key
    std::map<std::string, Value> options;  // every other key; nested tables flattened to a.b.c

    std::string id() const { return kind + "." + name; }
};

enum class Mode { DirectFirst, OutboxFirst };
// How engines on one outbox share a pipeline (../shared/design/SCALE-OUT.md): `single`, one
// direct-first engine (or any number of outbox-first ones); `shards`, N engines splitting its rows.
enum class Coordination { Single, Shards };

// [pipeline.<name>]
struct Pipeline {
    std::string name;
    Location where;
    // The component instance names per kind, and where each reference was written.
    std::map<std::string, std::string> uses;
    std::map<std::string, Location> uses_where;
    // [transform.<name>] instances, in the order they run before every send to the sink.
    List transforms;
    Location transforms_where;  // line 0: not written
    Mode mode = Mode::DirectFirst;
    std::string topic;                 // default topic for events that name none
    // Topic names or `*` patterns a client may name (engine/pipeline/topic_name.hpp); empty: any
    // legal name. Not written: [topic] when the HTTP ingress is public, else empty (topics_default).
    List topics;
    Location topics_where;             // line 0: not written
    bool topics_default = false;       // set by the public-ingress rule, not by the user
    int64_t direct_timeout_ms = 2000;  // how long a direct publish waits for Kafka's report
    Location direct_timeout_where;     // line 0: not written (the default)
    int64_t batch_size = 100;          // relay claim limit
    // While claims come back full (a backlog), each next one doubles, up to this.
    int64_t drain_batch_size = 1000;
    bool claim_ahead = true;           // a draining relay claims the next batch during a send
    int64_t lease_ms = 30000;          // how long a claimed row stays ours
    int64_t circuit_threshold = 3;     // consecutive direct failures that open the circuit
    int64_t shutdown_timeout_ms = 10000;
    bool dead_letter_rejects = false;  // on_reject = "dead-letter" (else "refuse")
    // publish_total's event_type label: the first this many types keep their name (0: no label).
    int64_t metrics_event_types = 0;
    Coordination coordination = Coordination::Single;
    Location coordination_where;       // line 0: not written
};

// The keys [engine] and [pipeline.<name>] take, as the loader's tables declare them (the only
// lists), each with its default and meaning: configs/README.md's tables are made of these rows.
struct KeyRow {
    std::vector<std::string> keys;  // keys with the same meaning share a row
    std::string default_text;
    std::string meaning;
};
std::vector<KeyRow> engine_key_rows();  // the http_* limits included
std::vector<KeyRow> pipeline_key_rows();
std::vector<std::string> engine_key_names();
std::vector<std::string> pipeline_key_names();
// "| key | default | meaning |" and a line per row, as configs/README.md holds them.
std::string key_table_markdown(const std::vector<KeyRow>& rows);
// `readme` with the tables between its "<!-- keys:engine ... -->" and "<!-- /keys:engine -->"
// markers (and keys:pipeline) made anew from the rows; throws when a marker is missing.
std::string with_key_tables(const std::string& readme);

// [engine] http_* keys: the HTTP listener's limits, enforced by engine/http/server.cpp. Each is
// declared once, in kHttpLimitKeys (load.cpp), with its default here.
struct HttpLimits {
    int64_t max_header_bytes = 16 * 1024;    // request line + header lines
    int64_t max_headers = 100;               // header fields per request
    int64_t max_body_bytes = 8 * 1024 * 1024;  // on the wire, and again after decompression
    int64_t max_events = 10000;              // events per request
    int64_t max_depth = 64;                  // JSON nesting levels, the outer value included
    int64_t request_timeout_ms = 10000;      // a request's first byte to its last body byte
    int64_t idle_timeout_ms = 15000;         // a keep-alive connection between requests
    int64_t max_connections = 512;           // beyond: probes still answered, other requests 503
    int64_t shutdown_timeout_ms = 5000;      // requests in flight at stop get this long to finish
    bool gzip = false;                       // accept Content-Encoding gzip / deflate
};

// One [engine] http_* key, for the loader, `validate` and the docs.
struct HttpLimitKey {
    const char* key;          // "http_max_body_bytes"
    enum Kind { Count, Bytes, Duration, Flag } kind;
    int64_t HttpLimits::*value;  // null for Flag
    int64_t min, max;
    const char* default_text;  // as configs/README.md shows it
    const char* meaning;
};
extern const HttpLimitKey kHttpLimitKeys[];
extern const size_t kHttpLimitKeyCount;

// [engine]
struct Engine {
    List plugin_path;
    Location plugin_path_where;
    bool plugin_path_from_env = false;
    std::string log_level = "info";  // trace, debug, info, warn, error
    std::string log_format = "text"; // text | json
    std::string http_listen;         // "127.0.0.1:8080"; empty = no HTTP listener
    Location http_listen_where;
    std::string http_token;          // bearer token for the ingress routes; empty = none (not written:
                                     // written empty is an error, so a ${VAR} that expands to "" cannot turn it off)
    bool http_token_from_env = false;
    HttpLimits http;
};

struct Config {
    std::string file;
    std::string environment;         // the selected environment
    std::string environment_source;  // --env, SPILLWAY_ENV, ENVIRONMENT or default
    Engine engine;
    std::map<std::string, Component> components;  // by id ("store.outbox")
    std::map<std::string, Pipeline> pipelines;
    // Settings that work but work against each other (e.g. a kafka sink's message.timeout.ms
    // above a pipeline's direct_timeout): printed by validate, logged at start, never fatal.
    std::vector<Diagnostic> warnings;

    const Component* component(const std::string& kind, const std::string& name) const;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();

struct LoadOptions {
    std::optional<std::string> environment;  // --env
    EnvLookup getenv = process_environment();
};

// Parses and checks `path`; throws ConfigError listing every problem found.
Config load_file(const std::string& path, const LoadOptions& options = {});
// The same for text already in memory; `name` stands for the file in messages.
Config load_string(const std::string& text, const std::string& name, const LoadOptions& options = {});
// The same, but the problems are appended to `errors` and what could be read is returned, so the
// caller can go on checking it (plugin options) and report everything in one run. Throws
// ConfigError only when nothing can be checked: an unreadable file, a TOML syntax error, an
// unknown environment.
Config load_file(const std::string& path, const LoadOptions& options, std::vector<Diagnostic>& errors);
Config load_string(const std::string& text, const std::string& name, const LoadOptions& options,
                   std::vector<Diagnostic>& errors);

// Bounds checked on the text before it is parsed: the TOML parser recurses once per nesting
// level and per dotted-key part, so a hostile file could exhaust the stack (a crash) instead of
// getting an error. A real pipeline file is a few KiB and nests 6 or 7 levels at most.
inline constexpr size_t kMaxConfigBytes = size_t{1} << 20;  // 1 MiB
// Nesting counts table-header parts, dotted-key parts, arrays and inline tables together:
// [a.b] c.d = [{e = 1}] puts e at level 6.
inline constexpr int kMaxConfigDepth = 64;

// True when an option's name says its value is a credential, whatever plugin declares it (for
// pass-through properties such as librdkafka's, which no option table lists). The rule: split the
// name into words at '.', '_' and '-' (case-insensitive); it is secret when a word is password,
// passwd, passphrase, secret, token, credentials, credential, apikey or jaas; or when a word is
// `key` after private, api, ssl, signing or encryption (ssl.key.pem, ssl.key.location,
// private.key.file, api_key) or before pem, der, data or material (key.pem). Any other `key` names
// a column, a field or a prefix (columns.key, key_prefix, message.key), not a credential.
// sasl.oauthbearer.config carries client secrets as text, so it is secret too.
bool name_says_secret(const std::string& option_name);

// The kafka sink plugin's default message.timeout.ms (plugins/kafka/producer_config.hpp; a test
// there keeps the two equal): what the cross-check assumes when a kafka sink does not set it.
inline constexpr int64_t kKafkaDefaultMessageTimeoutMs = 2000;

// Expands ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ in `text`. Sets *used_env when any
// variable was read. Throws std::invalid_argument with the reason on a malformed or unset reference.
std::string interpolate(const std::string& text, const EnvLookup& getenv, bool* used_env);

}  // namespace spillway::config

namespace spillway::config {

// The effective configuration as TOML. Values from the environment print as <from $VAR-ish>
// placeholders and options `is_secret` names as "<secret>", so the output is safe to share.
using SecretPredicate = std::function<bool(const Component&, const std::string& key)>;
// The plugin's defaults for keys the component does not set, as (key, TOML value) pairs; printed
// with a "# default" note so the output shows every value the plugin will run with.
using DefaultsFn = std::function<std::vector<std::pair<std::string, std::string>>(const Component&)>;
std::string render_toml(const Config& config, const SecretPredicate& is_secret = {}, const DefaultsFn& defaults = {});

}  // namespace spillway::config
