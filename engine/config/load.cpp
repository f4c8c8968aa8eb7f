// Turns a TOML pipeline file into config::Config: environment selection and overlay, ${VAR}
// interpolation, structure and reference checks. Collects every problem before failing, each with
// file:line:col and the key path, so one `spillway validate` run shows them all.
#include "engine/config/config.hpp"
#include "engine/pipeline/topic_name.hpp"

#include <spillway/detail/duration.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <tuple>
#include <sstream>

namespace spillway::config {

std::string Location::str() const {
    if (line == 0) return file;
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::str() const {
    std::string s = where.str() + ": ";
    if (!key_path.empty()) s += key_path + ": ";
    return s + message;
}

namespace {
std::string join_diagnostics(const std::vector<Diagnostic>& ds) {
    std::string s;
    for (const auto& d : ds) s += (s.empty() ? "" : "\n") + d.str();
    return s;
}
}  // namespace

namespace {
// Messages read top to bottom like the file, whatever order the checks ran in.
std::vector<Diagnostic> in_file_order(std::vector<Diagnostic> ds) {
    std::stable_sort(ds.begin(), ds.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::tie(a.where.file, a.where.line, a.where.column) < std::tie(b.where.file, b.where.line, b.where.column);
    });
    return ds;
}
}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join_diagnostics(in_file_order(diagnostics))), diagnostics_(in_file_order(std::move(diagnostics))) {}

const HttpLimitKey kHttpLimitKeys[] = {
    {"http_max_header_bytes", HttpLimitKey::Bytes, &HttpLimits::max_header_bytes, 1024, 1 << 20,
     "16384",
     "request line and header lines together, in bytes (1024 to 1 MiB); past it 431"},
    {"http_max_headers", HttpLimitKey::Count, &HttpLimits::max_headers, 8, 10000,
     "100",
     "header fields per request (8 to 10,000); past it 431"},
    {"http_max_body_bytes", HttpLimitKey::Bytes, &HttpLimits::max_body_bytes, 1024, int64_t(1) << 32,
     "8388608",
     "a request body in bytes, counted on the wire (Content-Length, chunked) and again after"
     " decompression (1024 to 4 GiB); past it 413, before any body byte when Content-Length says so"},
    {"http_max_events", HttpLimitKey::Count, &HttpLimits::max_events, 1, 10000000,
     "10000",
     "events in one request; past it 413 and nothing is published"},
    {"http_max_depth", HttpLimitKey::Count, &HttpLimits::max_depth, 2, 1000,
     "64",
     "JSON nesting levels of a body, the outer value included (2 to 1000); past it 400"},
    {"http_request_timeout", HttpLimitKey::Duration, &HttpLimits::request_timeout_ms, 100, 3600000,
     "`\"10s\"`",
     "from a request's first byte to its last body byte; past it 408 and the connection closes (a client"
     " trickling its request cannot hold a connection longer)"},
    {"http_idle_timeout", HttpLimitKey::Duration, &HttpLimits::idle_timeout_ms, 100, 3600000,
     "`\"15s\"`",
     "a keep-alive connection waiting for its next request; past it the connection closes"},
    {"http_max_connections", HttpLimitKey::Count, &HttpLimits::max_connections, 1, 1000000,
     "512",
     "open connections; past it a connection may send one probe (`/healthz`, `/readyz`, `/metrics`,"
     " answered), anything else gets 503 with `Retry-After: 1`; past twice it, connections are closed at"
     " once. Why 512: far above what publishing services keep open (they reuse keep-alive connections),"
     " low enough that descriptors and buffers stay bounded"},
    {"http_shutdown_timeout", HttpLimitKey::Duration, &HttpLimits::shutdown_timeout_ms, 0, 600000,
     "`\"5s\"`",
     "at stop: idle connections close at once, requests in flight get this long to finish, then every"
     " connection closes"},
    {"http_gzip", HttpLimitKey::Flag, nullptr, 0, 1,
     "`false`",
     "accept request bodies with `Content-Encoding: gzip` or `deflate` (the decompressed size is bounded"
     " by `http_max_body_bytes`); off, such bodies get 415"},
};
const size_t kHttpLimitKeyCount = sizeof kHttpLimitKeys / sizeof kHttpLimitKeys[0];

const Component* Config::component(const std::string& kind, const std::string& name) const {
    auto it = components.find(kind + "." + name);
    return it == components.end() ? nullptr : &it->second;
}

namespace {

template <class Range>
std::string join(const Range& items, const char* sep = ", ") {
    std::string s;
    for (const auto& i : items) s += (s.empty() ? "" : sep) + std::string(i);
    return s;
}

bool is_identifier(std::string_view s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

const char* type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        default: return "nothing";
    }
}

// Overlay `from` onto `into`: tables merge key by key, anything else replaces. Nodes are moved,
// not copied: toml++ keeps a node's source position only across a move, and messages about an
// overlaid value must point at the overlay's line.
void deep_merge(toml::table& into, toml::table&& from) {
    for (auto&& [key, node] : from) {
        toml::node* existing = into.get(key);
        if (existing && existing->is_table() && node.is_table()) {
            deep_merge(*existing->as_table(), std::move(*node.as_table()));
        } else if (auto* t = node.as_table()) {
            into.insert_or_assign(key, std::move(*t));
        } else if (auto* a = node.as_array()) {
            into.insert_or_assign(key, std::move(*a));
        } else {
            node.visit([&](auto&& leaf) { into.insert_or_assign(key, std::move(leaf)); });
        }
    }
}

class Loader {
public:
    Loader(std::string file, const LoadOptions& options) : file_(std::move(file)), options_(options) {}

    // Reads everything it can. Problems go to `errors` when given (else they are thrown), so an
    // unknown top-level table or a bad pipeline key hides nothing the caller checks next.
    Config build(toml::table& root, std::vector<Diagnostic>* errors) {
        Config cfg;
        cfg.file = file_;
        select_environment(root, cfg);
        if (cfg.environment.empty()) throw ConfigError(diagnostics_);  // no environment: nothing to check against
        check_top_level(root);
        if (auto* engine = root["engine"].as_table()) read_engine(*engine, cfg.engine);
        warn_open_listener(cfg);
        for (const char* kind : kComponentKinds)
            if (auto* t = root[kind].as_table()) read_components(kind, *t, cfg);
        if (auto* p = root["pipeline"].as_table()) read_pipelines(*p, cfg);
        if (cfg.pipelines.empty() && !root["pipeline"].as_table())
            error(Location{file_, 0, 0}, "pipeline", "no [pipeline.<name>] is defined; a config needs at least one");
        default_topics(cfg);
        check_kafka_timeouts(cfg);
        if (errors) errors->insert(errors->end(), diagnostics_.begin(), diagnostics_.end());
        else if (!diagnostics_.empty()) throw ConfigError(diagnostics_);
        return cfg;
    }

private:
    Location at(const toml::node& n) const {
        const auto& s = n.source();
        return Location{file_, s.begin.line, s.begin.column};
    }
    void error(const Location& where, std::string key, std::string message) {
        diagnostics_.push_back({where, std::move(key), std::move(message)});
    }
    void error(const toml::node& n, std::string key, std::string message) { error(at(n), std::move(key), std::move(message)); }

    // The environment: --env, else SPILLWAY_ENV, else ENVIRONMENT, else development.
    void select_environment(toml::table& root, Config& cfg) {
        std::string env = "development", source = "default";
        if (options_.environment) {
            env = *options_.environment, source = "--env";
        } else if (auto v = options_.getenv("SPILLWAY_ENV"); v && !v->empty()) {
            env = *v, source = "SPILLWAY_ENV";
        } else if (auto e = options_.getenv("ENVIRONMENT"); e && !e->empty()) {
            env = *e, source = "ENVIRONMENT";
        }
        const auto known = std::find_if(std::begin(kEnvironments), std::end(kEnvironments),
                                        [&](const char* k) { return env == k; });
        if (known == std::end(kEnvironments)) {
            error(Location{file_, 0, 0}, "", "unknown environment '" + env + "' (from " + source + "); expected one of " + join(kEnvironments));
            return;
        }
        cfg.environment = env;
        cfg.environment_source = source;

        toml::node* envs = root.get("environments");
        if (!envs) return;
        if (!envs->is_table()) {
            error(*envs, "environments", std::string("expected a table, got ") + type_name(*envs));
            root.erase("environments");  // reported once, here, and the rest is checked without it
            return;
        }
        for (auto& [name, overlay] : *envs->as_table()) {
            const std::string key = "environments." + std::string(name.str());
            if (std::find_if(std::begin(kEnvironments), std::end(kEnvironments),
                             [&](const char* k) { return name.str() == k; }) == std::end(kEnvironments)) {
                error(overlay, key, "unknown environment '" + std::string(name.str()) + "'; expected one of " + join(kEnvironments));
                continue;
            }
            if (!overlay.is_table()) error(overlay, key, std::string("expected a table, got ") + type_name(overlay));
            else if (overlay.as_table()->contains("environments")) error(overlay, key, "an overlay cannot contain [environments]");
        }
        // A bad overlay is reported above and left out; the base and any other overlay are still checked.
        toml::table overlay;
        if (auto* chosen = envs->as_table()->get_as<toml::table>(env); chosen && !chosen->contains("environments"))
            overlay = std::move(*chosen);
        root.erase("environments");
        // An overlay that swaps a component's plugin replaces that component's table: the base's
        // options belong to the other plugin (sqlite's `path` means nothing to postgres).
        for (const char* kind : kComponentKinds) {
            auto* over = overlay.get_as<toml::table>(kind);
            auto* base = root.get_as<toml::table>(kind);
            if (!over || !base) continue;
            for (auto& [name, comp] : *over) {
                const auto* new_plugin = comp.is_table() ? comp.as_table()->get_as<std::string>("plugin") : nullptr;
                const auto* old = base->get_as<toml::table>(name.str());
                const auto* old_plugin = old ? old->get_as<std::string>("plugin") : nullptr;
                if (new_plugin && old_plugin && new_plugin->get() != old_plugin->get()) base->erase(name.str());
            }
        }
        deep_merge(root, std::move(overlay));
    }

    void check_top_level(const toml::table& root) {
        static const std::set<std::string> allowed = {"engine", "sink", "store", "notifier", "scheduler", "transform", "pipeline"};
        for (const auto& [key, node] : root) {
            const std::string k(key.str());
            if (!allowed.count(k)) {
                error(node, k, "unknown top-level key; expected engine, sink, store, notifier, scheduler, transform, pipeline or environments");
            } else if (!node.is_table()) {
                error(node, k, std::string("expected a table, got ") + type_name(node));
            }
        }
    }

    // A string value with ${VAR} expanded; reports and returns nullopt on failure.
    std::optional<std::string> text(const toml::node& n, const std::string& key, bool* from_env = nullptr) {
        if (!n.is_string()) {
            error(n, key, std::string("expected a string, got ") + type_name(n));
            return std::nullopt;
        }
        try {
            return interpolate(n.as_string()->get(), options_.getenv, from_env);
        } catch (const std::invalid_argument& e) {
            error(n, key, e.what());
            return std::nullopt;
        }
    }

    std::optional<int64_t> duration(const toml::node& n, const std::string& key) {
        if (auto i = n.as_integer()) {
            if (i->get() < 0) {
                error(n, key, "a duration cannot be negative");
                return std::nullopt;
            }
            return i->get();
        }
        if (!n.is_string()) {
            error(n, key, std::string("expected a duration such as \"250ms\" or \"2s\", got ") + type_name(n));
            return std::nullopt;
        }
        auto s = text(n, key);
        if (!s) return std::nullopt;
        auto ms = spillway::detail::parse_duration_ms(*s);
        if (!ms) error(n, key, "bad duration \"" + *s + "\"; write a number with ms, s, m or h, e.g. \"250ms\", \"2s\"");
        return ms;
    }

    std::optional<int64_t> positive_int(const toml::node& n, const std::string& key) {
        auto i = n.as_integer();
        if (!i) {
            error(n, key, std::string("expected an integer, got ") + type_name(n));
            return std::nullopt;
        }
        if (i->get() <= 0) {
            error(n, key, "must be greater than 0");
            return std::nullopt;
        }
        return i->get();
    }

    std::optional<int64_t> int_between(const toml::node& n, const std::string& key, int64_t low, int64_t high) {
        auto i = n.as_integer();
        if (!i) {
            error(n, key, std::string("expected an integer, got ") + type_name(n));
            return std::nullopt;
        }
        if (i->get() < low || i->get() > high) {
            error(n, key, "must be from " + std::to_string(low) + " to " + std::to_string(high) + ", got " +
                              std::to_string(i->get()));
            return std::nullopt;
        }
        return i->get();
    }

    std::optional<bool> flag(const toml::node& n, const std::string& key) {
        if (auto b = n.as_boolean()) return b->get();
        error(n, key, std::string("expected true or false, got ") + type_name(n));
        return std::nullopt;
    }

    std::optional<std::string> one_of(const toml::node& n, const std::string& key, std::initializer_list<const char*> choices) {
        auto s = text(n, key);
        if (!s) return std::nullopt;
        for (const char* c : choices)
            if (*s == c) return s;
        error(n, key, "\"" + *s + "\" is not one of " + join(choices));
        return std::nullopt;
    }

    static const HttpLimitKey* http_limit_key(const std::string& key) {
        for (size_t i = 0; i < kHttpLimitKeyCount; ++i)
            if (key == kHttpLimitKeys[i].key) return &kHttpLimitKeys[i];
        return nullptr;
    }

    void read_http_limit(const toml::node& n, const std::string& path, const HttpLimitKey& k, HttpLimits& limits) {
        if (k.kind == HttpLimitKey::Flag) {
            if (auto b = flag(n, path)) limits.gzip = *b;
            return;
        }
        std::optional<int64_t> v;
        if (k.kind == HttpLimitKey::Duration) {
            v = duration(n, path);
        } else if (auto i = n.as_integer()) {
            v = i->get();
        } else {
            error(n, path, std::string("expected an integer, got ") + type_name(n));
        }
        if (!v) return;
        const char* unit = k.kind == HttpLimitKey::Duration ? " ms" : k.kind == HttpLimitKey::Bytes ? " bytes" : "";
        if (*v < k.min || *v > k.max)
            error(n, path, "must be " + std::to_string(k.min) + unit + " to " + std::to_string(k.max) + unit + ", got " +
                               std::to_string(*v) + unit);
        else
            limits.*k.value = *v;
    }

    // One key of [engine] besides the http_* limits (kHttpLimitKeys); with them, the only list.
    struct EngineKey {
        const char* key;
        const char* default_text;  // as configs/README.md shows it
        const char* meaning;
        void (*read)(Loader& l, const toml::node& node, const std::string& path, Engine& e);
    };

    static const std::vector<EngineKey>& engine_keys() {
        using N = const toml::node;
        using S = const std::string;
        static const std::vector<EngineKey> keys{
            {"plugin_path", "`$SPILLWAY_PLUGIN_PATH`, else next to the binary",
             "folders (or files) searched for `*.so` plugins; relative paths are relative to the working directory",
             [](Loader& l, N& node, S& path, Engine& e) {
                 e.plugin_path_where = l.at(node);
                 if (node.is_string()) {
                     if (auto s = l.text(node, path, &e.plugin_path_from_env)) e.plugin_path.push_back(*s);
                 } else if (auto* arr = node.as_array()) {
                     for (const auto& item : *arr)
                         if (auto s = l.text(item, path, &e.plugin_path_from_env)) e.plugin_path.push_back(*s);
                 } else {
                     l.error(node, path, std::string("expected a list of folders, got ") + type_name(node));
                 }
             }},
            {"log_level", "`info`",
             "trace, debug, info, warn, error",
             [](Loader& l, N& node, S& path, Engine& e) {
                 if (auto s = l.one_of(node, path, {"trace", "debug", "info", "warn", "error"})) e.log_level = *s;
             }},
            {"log_format", "`text`",
             "`text` for people, `json` (one object per line) for machines; logs go to stderr",
             [](Loader& l, N& node, S& path, Engine& e) {
                 if (auto s = l.one_of(node, path, {"text", "json"})) e.log_format = *s;
             }},
            {"http_listen", "none",
             "`host:port` of the HTTP ingress and admin listener (loopback unless you say otherwise). A host"
             " other than `localhost`, `127.*` or `::1` without `http_token` is a warning in `validate` and at"
             " start: anyone who reaches the port can publish and use the admin API",
             [](Loader& l, N& node, S& path, Engine& e) {
                 auto s = l.text(node, path);
                 if (!s) return;
                 // host:port, port 0-65535 (0 picks a free one); empty turns the listener off.
                 const size_t colon = s->rfind(':');
                 const std::string port = colon == std::string::npos ? "" : s->substr(colon + 1);
                 const bool numeric = !port.empty() && port.size() <= 5 &&
                                      std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
                 if (!s->empty() && (colon == 0 || !numeric || std::stoi(port) > 65535))
                     l.error(node, path, "expected \"host:port\" (e.g. \"127.0.0.1:8080\"), got \"" + *s + "\"");
                 else
                     e.http_listen = *s, e.http_listen_where = l.at(node);
             }},
            {"http_token", "none",
             "bearer token required on the ingress routes (a secret: never printed). Leave the key out to run"
             " without one: written empty, or expanding to empty (`\"${TOKEN:-}\"` with `TOKEN` unset), it is an"
             " error, so a missing variable cannot turn authentication off",
             [](Loader& l, N& node, S& path, Engine& e) {
                 auto s = l.text(node, path, &e.http_token_from_env);
                 if (!s) return;
                 if (s->empty())
                     l.error(node, path,
                             std::string(node.as_string()->get().empty() ? "is empty" : "expands to an empty string") +
                                 ", which would turn authentication off; set a token, or remove http_token to run "
                                 "without one");
                 else
                     e.http_token = *s;
             }},
        };
        return keys;
    }

public:
    static std::vector<KeyRow> engine_key_rows() {
        std::vector<KeyRow> rows;
        for (const auto& k : engine_keys()) rows.push_back({{k.key}, k.default_text, k.meaning});
        for (size_t i = 0; i < kHttpLimitKeyCount; ++i)
            rows.push_back({{kHttpLimitKeys[i].key}, kHttpLimitKeys[i].default_text, kHttpLimitKeys[i].meaning});
        return rows;
    }

private:
    // The row of `keys` (engine_keys(), pipeline_keys()) for `key`, or null.
    template <class Key>
    static const Key* find_key(const std::vector<Key>& keys, const std::string& key) {
        const auto entry = std::find_if(keys.begin(), keys.end(), [&](const Key& k) { return key == k.key; });
        return entry == keys.end() ? nullptr : &*entry;
    }

    void read_engine(const toml::table& t, Engine& e) {
        for (const auto& [k, node] : t) {
            const std::string key(k.str()), path = "engine." + key;
            if (const EngineKey* entry = find_key(engine_keys(), key)) entry->read(*this, node, path, e);
            else if (const HttpLimitKey* limit = http_limit_key(key)) read_http_limit(node, path, *limit, e.http);
            else error(node, path, "unknown key; [engine] takes " + join(config::engine_key_names()));
        }
    }

    // Component options: nested tables flatten to dotted keys, so `columns.id = "x"` and
    // `"bootstrap.servers" = "y"` both arrive as one key.
    void read_options(const toml::table& t, const std::string& prefix, const std::string& path, Component& c) {
        for (const auto& [k, node] : t) {
            const std::string key = prefix + std::string(k.str());
            const std::string full = path + "." + std::string(k.str());
            if (prefix.empty() && key == "plugin") continue;
            Value v;
            v.where = at(node);
            if (auto* sub = node.as_table()) {
                read_options(*sub, key + ".", full, c);
                continue;
            } else if (node.is_string()) {
                auto s = text(node, full, &v.from_env);
                if (!s) continue;
                v.data = *s;
                // "${REDIS_PORT:-6379}" is a port whether the variable or the default supplied it.
                v.interpolated = node.as_string()->get().find("${") != std::string::npos;
            } else if (auto i = node.as_integer()) {
                v.data = i->get();
            } else if (auto d = node.as_floating_point()) {
                v.data = d->get();
            } else if (auto b = node.as_boolean()) {
                v.data = b->get();
            } else if (auto* arr = node.as_array()) {
                List items;
                bool ok = true;
                for (const auto& item : *arr) {
                    if (item.is_string()) {
                        auto s = text(item, full, &v.from_env);
                        if (!s) ok = false;
                        else items.push_back(*s);
                    } else if (auto i = item.as_integer()) {
                        items.push_back(std::to_string(i->get()));
                    } else if (auto d = item.as_floating_point()) {
                        std::ostringstream os;
                        os << d->get();
                        items.push_back(os.str());
                    } else if (auto b = item.as_boolean()) {
                        items.push_back(b->get() ? "true" : "false");
                    } else {
                        error(item, full, std::string("list items must be strings or numbers, got ") + type_name(item));
                        ok = false;
                    }
                }
                if (!ok) continue;
                v.data = std::move(items);
            } else {
                error(node, full, std::string(type_name(node)) + " is not a supported option value");
                continue;
            }
            c.options[key] = std::move(v);
        }
    }

    // A [<kind>.<name>] or [pipeline.<name>] entry is a table under a name of letters, digits, '_'
    // and '-'; reports it when not. `what`: "instance" or "pipeline", for the message.
    bool named_table(const toml::node& node, const std::string& name, const std::string& path, const char* what) {
        if (!node.is_table()) {
            error(node, path, std::string("expected a table [") + path + "], got " + type_name(node));
            return false;
        }
        if (!is_identifier(name)) {
            error(node, path, std::string(what) + " names may use letters, digits, '_' and '-' only");
            return false;
        }
        return true;
    }

    void read_components(const char* kind, const toml::table& t, Config& cfg) {
        for (const auto& [k, node] : t) {
            const std::string name(k.str()), path = std::string(kind) + "." + name;
            if (!named_table(node, name, path, "instance")) continue;
            const auto& table = *node.as_table();
            Component c;
            c.kind = kind;
            c.name = name;
            c.where = at(node);
            if (const toml::node* p = table.get("plugin")) {
                c.plugin_where = at(*p);
                if (auto s = text(*p, path + ".plugin")) c.plugin = *s;
            } else {
                error(node, path, std::string("missing 'plugin' (which ") + kind + " plugin to load)");
            }
            read_options(table, "", path, c);
            cfg.components[c.id()] = std::move(c);
        }
    }

    // A [pipeline.<name>] being read: drain_batch_size is checked against batch_size at the end.
    struct PipelineDraft {
        Pipeline& p;
        const Config& cfg;
        const toml::node* drain_set;  // where drain_batch_size was written
    };
    // One key of [pipeline.<name>]; the table is the only list of them (the unknown-key message
    // and pipeline_key_names() come from it), the defaults are config::Pipeline's.
    struct PipelineKey {
        const char* key;
        const char* default_text;  // as configs/README.md shows it
        const char* meaning;       // keys with the same meaning share a row there
        void (*read)(Loader& l, const toml::node& v, const std::string& kpath, const std::string& key, PipelineDraft& d);
    };

    // Readers of the keys whose value is stored as the check returns it, in the Pipeline member named.
    template <int64_t Pipeline::*member>
    static void positive_int_into(Loader& l, const toml::node& v, const std::string& kpath, const std::string&,
                                  PipelineDraft& d) {
        if (auto i = l.positive_int(v, kpath)) d.p.*member = *i;
    }
    template <int64_t Pipeline::*member>
    static void duration_into(Loader& l, const toml::node& v, const std::string& kpath, const std::string&,
                              PipelineDraft& d) {
        if (auto ms = l.duration(v, kpath)) d.p.*member = *ms;
    }
    template <bool Pipeline::*member>
    static void flag_into(Loader& l, const toml::node& v, const std::string& kpath, const std::string&, PipelineDraft& d) {
        if (auto b = l.flag(v, kpath)) d.p.*member = *b;
    }

    static const std::vector<PipelineKey>& pipeline_keys() {
        static const std::vector<PipelineKey> keys = [] {
            auto instance = [](Loader& l, const toml::node& v, const std::string& kpath, const std::string& key,
                               PipelineDraft& d) {
                auto s = l.text(v, kpath);
                if (!s) return;
                d.p.uses[key] = *s;
                d.p.uses_where[key] = l.at(v);
                if (d.cfg.component(key, *s)) return;
                std::vector<std::string> defined;
                for (const auto& [id, c] : d.cfg.components)
                    if (c.kind == key) defined.push_back(c.name);
                l.error(v, kpath, "no [" + key + "." + *s + "] is defined" +
                                      (defined.empty() ? std::string(" (no ") + key + " is defined at all)"
                                                       : " (defined: " + join(defined) + ")"));
            };
            static constexpr const char* kRequired = "required";
            static constexpr const char* kUses = "the instance names this pipeline uses";
            using D = PipelineDraft;
            using N = const toml::node;
            using S = const std::string;
            return std::vector<PipelineKey>{
                {"sink", kRequired, kUses, instance},
                {"store", kRequired, kUses, instance},
                {"notifier", kRequired, kUses, instance},
                {"scheduler", kRequired, kUses, instance},
                {"transforms", "`[]`",
                 "the [transform.<name>] instances every event passes through, in this order, immediately before"
                 " each send to the sink, on the direct path and the relay's alike; the outbox keeps the event as"
                 " accepted. A transform may set the topic, key, payload and headers, drop an event (counted in"
                 " `spillway_transform_dropped_total`, settled as delivered) or reject it (refused, or dead-lettered"
                 " as `on_reject` says, with the transform's reason)",
                 [](Loader& l, N& v, S& kpath, S&, D& d) { l.read_transforms(v, kpath, d); }},
                {"mode", "`direct-first`",
                 "`direct-first`: the sink (Kafka) first, the outbox when it cannot confirm; `outbox-first`: every event"
                 " through the outbox (the application's own transaction writes the row, see below)",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     if (auto s = l.one_of(v, kpath, {"direct-first", "outbox-first"}))
                         d.p.mode = *s == "direct-first" ? Mode::DirectFirst : Mode::OutboxFirst;
                 }},
                {"topic", "none",
                 "topic for events that name none",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     auto s = l.text(v, kpath);
                     if (!s) return;
                     if (auto problem = pipeline::topic_name_problem(*s); !problem.empty()) l.error(v, kpath, problem);
                     else d.p.topic = *s;
                 }},
                {"topics", "`[topic]` when the HTTP ingress is public, else any",
                 "the topics a client may name: a list of names and patterns where `*` stands for any run of"
                 " characters (`\"orders.*\"`, `\"*.events\"`, `\"*\"` for any); every name must also be a legal"
                 " Kafka topic (letters, digits, `.`, `_`, `-`; 1 to 249 characters; not `.` or `..`) and not"
                 " internal (`__...`), whatever the list says. An event whose topic fails either check is refused"
                 " (`invalid`, HTTP 400, the topic shown with non-printable bytes as `\\xNN`). Not written: when"
                 " `http_listen` is anything but loopback (`127.x`, `::1`, `localhost`), only the pipeline's own"
                 " `topic` (a pipeline with no `topic` must then list them); otherwise any legal name. An empty list"
                 " is an error",
                 [](Loader& l, N& v, S& kpath, S&, D& d) { l.read_topics(v, kpath, d.p); }},
                {"direct_timeout", "`2s`",
                 "how long a direct publish waits for the sink's acknowledgement (Kafka's delivery report) before the"
                 " event spills to the outbox (sooner when the sink reports DOWN while it waits); keep a kafka sink's `message.timeout.ms`"
                 " (default `2000`, equal to this default) at or below it, else librdkafka may still deliver a"
                 " spilled event after the relay did: `validate` and the start-up log warn, naming the key",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     if (auto ms = l.duration(v, kpath)) {
                         d.p.direct_timeout_ms = *ms;
                         d.p.direct_timeout_where = l.at(v);
                     }
                 }},
                {"batch_size", "`100`", "rows the relay claims per round", positive_int_into<&Pipeline::batch_size>},
                {"drain_batch_size", "`1000` (or `batch_size` if larger)",
                 "while claims come back full (a backlog), each next claim doubles, up to this; the first claim that"
                 " is not full, or a failed send, goes back to `batch_size`. Set it to `batch_size` for rounds of one"
                 " size. At least `batch_size`",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     if (auto i = l.positive_int(v, kpath)) {
                         d.p.drain_batch_size = *i;
                         d.drain_set = &v;
                     }
                 }},
                {"claim_ahead", "`true`",
                 "while a backlog drains, claim the next batch (and settle the last) while one is being sent; `false`"
                 " claims, sends and settles one batch at a time. Needs a store with `claim_next` (both bundled ones)",
                 flag_into<&Pipeline::claim_ahead>},
                {"lease", "`30s`",
                 "how long a claimed row stays this relay's; a crashed relay's rows come back after it (at once when"
                 " the crashed engine ran on the same host: the next engine's first claim takes back the leases of a"
                 " process that is gone)",
                 duration_into<&Pipeline::lease_ms>},
                {"circuit_threshold", "`3`",
                 "consecutive direct failures that open the circuit (a sink reporting DOWN, e.g. Kafka with all brokers down, opens it at once)",
                 positive_int_into<&Pipeline::circuit_threshold>},
                {"shutdown_timeout", "`10s`", "how long stop may take to finish the relay's batch and flush the sink",
                 duration_into<&Pipeline::shutdown_timeout_ms>},
                {"coordination", "`single`",
                 "how engines on one outbox share this pipeline. `single`: one engine runs it direct-first (a second"
                 " one refuses to start, naming the first; outbox-first engines may be many); `shards`: any number of"
                 " engines run it, each relaying the rows of the shards it owns (256 per pipeline, by key), and"
                 " direct-first stays in order across them by asking the outbox which keys wait there. `shards` needs"
                 " a `postgres` store and a doorbell that wakes every engine (`pgnotify`, or `redis` with"
                 " `fan_out = \"all\"`); see Scale-out below",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     if (auto s = l.one_of(v, kpath, {"single", "shards"})) {
                         d.p.coordination = *s == "shards" ? Coordination::Shards : Coordination::Single;
                         d.p.coordination_where = l.at(v);
                     }
                 }},
                {"on_reject", "`refuse`",
                 "a permanently failing event on the direct path: `refuse` tells the caller; `dead-letter` stores it"
                 " and parks it as a dead letter",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     if (auto s = l.one_of(v, kpath, {"refuse", "dead-letter"})) d.p.dead_letter_rejects = *s == "dead-letter";
                 }},
                {"metrics_event_types", "`0`",
                 "gives `spillway_publish_total` an `event_type` label for the first this many distinct event types"
                 " the pipeline sees (0 to 100); events of a later type count under `event_type=\"other\"`, events"
                 " with none under `\"\"`. `0`: no `event_type` label, so what clients send never adds series",
                 [](Loader& l, N& v, S& kpath, S&, D& d) {
                     if (auto i = l.int_between(v, kpath, 0, 100)) d.p.metrics_event_types = *i;
                 }},
            };
        }();
        return keys;
    }

public:
    // Keys that share a meaning share a row (sink, store, notifier, scheduler).
    static std::vector<KeyRow> pipeline_key_rows() {
        std::vector<KeyRow> rows;
        const char* last = nullptr;
        for (const auto& k : pipeline_keys()) {
            if (k.meaning == last) rows.back().keys.emplace_back(k.key);
            else rows.push_back({{k.key}, k.default_text, k.meaning});
            last = k.meaning;
        }
        return rows;
    }

private:
    void read_pipelines(const toml::table& t, Config& cfg) {
        for (const auto& [k, node] : t) {
            const std::string name(k.str()), path = "pipeline." + name;
            if (!named_table(node, name, path, "pipeline")) continue;
            Pipeline p;
            p.name = name;
            p.where = at(node);
            PipelineDraft draft{p, cfg, nullptr};
            for (const auto& [pk, v] : *node.as_table()) {
                const std::string key(pk.str()), kpath = path + "." + key;
                if (const PipelineKey* entry = find_key(pipeline_keys(), key)) entry->read(*this, v, kpath, key, draft);
                else error(v, kpath, "unknown key; a pipeline takes " + join(config::pipeline_key_names()));
            }
            const toml::node* drain_set = draft.drain_set;  // where drain_batch_size was written
            if (!drain_set) {
                p.drain_batch_size = std::max(p.drain_batch_size, p.batch_size);  // the default never shrinks a round
            } else if (p.drain_batch_size < p.batch_size) {
                error(*drain_set, path + ".drain_batch_size",
                      "must be at least batch_size (" + std::to_string(p.batch_size) + "), got " +
                          std::to_string(p.drain_batch_size));
            }
            for (const char* kind : kKinds)
                if (!p.uses.count(kind))
                    error(node, path, std::string("missing '") + kind + "' (every pipeline names a sink, store, notifier and scheduler)");
            if (p.coordination == Coordination::Shards) check_shards(p, cfg, *node.as_table()->get("coordination"), path);
            cfg.pipelines[name] = std::move(p);
        }
    }

    // coordination = "shards" needs a store every engine reaches (SQLite is one host's file) and a
    // doorbell that wakes every engine (a spill in one may be a row another owns).
    void check_shards(const Pipeline& p, const Config& cfg, const toml::node& v, const std::string& path) {
        const std::string kpath = path + ".coordination";
        auto uses = [&](const char* kind) -> const Component* {
            auto it = p.uses.find(kind);
            return it == p.uses.end() ? nullptr : cfg.component(kind, it->second);
        };
        if (const Component* store = uses("store"); store && store->plugin == "sqlite")
            error(v, kpath, "\"shards\" needs a store every engine reaches: [store." + store->name +
                                "] is sqlite, one host's file (use a postgres store, or coordination = \"single\")");
        const Component* bell = uses("notifier");
        if (bell && bell->plugin == "inproc")
            error(v, kpath, "\"shards\" needs a doorbell that wakes every engine: [notifier." + bell->name +
                                "] is inproc, which wakes only its own (use pgnotify, or redis with fan_out = \"all\")");
        if (bell && bell->plugin == "redis") {
            auto it = bell->options.find("fan_out");
            if (it == bell->options.end() || it->second.render() != "\"all\"")
                error(v, kpath, "\"shards\" needs a doorbell that wakes every engine: [notifier." + bell->name +
                                    "] is redis with fan_out = \"one\", which wakes one engine per ring (set fan_out = "
                                    "\"all\" there)");
        }
    }

    // `topics = ["orders.events", "orders.*"]`: at least one entry, each a name or a `*` pattern.
    void read_transforms(const toml::node& v, const std::string& kpath, PipelineDraft& d) {
        const auto* arr = v.as_array();
        if (!arr) return error(v, kpath, std::string("expected a list of [transform.<name>] names, got ") + type_name(v));
        d.p.transforms_where = at(v);
        for (const auto& item : *arr) {
            auto s = text(item, kpath);
            if (!s) continue;
            if (std::find(d.p.transforms.begin(), d.p.transforms.end(), *s) != d.p.transforms.end()) {
                error(item, kpath, "transform '" + *s + "' is listed twice");
                continue;
            }
            d.p.transforms.push_back(*s);
            if (d.cfg.component("transform", *s)) continue;
            std::vector<std::string> defined;
            for (const auto& [id, c] : d.cfg.components)
                if (c.kind == "transform") defined.push_back(c.name);
            error(item, kpath, "no [transform." + *s + "] is defined" +
                                   (defined.empty() ? std::string(" (no transform is defined at all)")
                                                    : " (defined: " + join(defined) + ")"));
        }
    }

    void read_topics(const toml::node& v, const std::string& kpath, Pipeline& p) {
        const auto* arr = v.as_array();
        if (!arr) return error(v, kpath, std::string("expected a list of topic names or patterns, got ") + type_name(v));
        if (arr->empty())
            return error(v, kpath, "an empty list allows no topic; list names or patterns (\"*\" allows any legal name)");
        p.topics_where = at(v);
        for (const auto& item : *arr) {
            auto s = text(item, kpath);
            if (!s) continue;
            if (auto problem = pipeline::topic_pattern_problem(*s); !problem.empty()) error(item, kpath, problem);
            else p.topics.push_back(*s);
        }
    }

    // The HTTP ingress is public when it listens on anything but loopback: then a pipeline that
    // does not say which topics clients may name takes its own `topic` only, so an exposed port
    // cannot write every topic the producer's credentials reach; and no http_token is warned about.
    static bool ingress_public(const std::string& http_listen) {
        if (http_listen.empty()) return false;
        std::string host = http_listen.substr(0, http_listen.rfind(':'));
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        return !(host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0);
    }

    void default_topics(Config& cfg) {
        if (!ingress_public(cfg.engine.http_listen)) return;
        for (auto& [name, p] : cfg.pipelines) {
            if (!p.topics.empty() || p.topics_where.line != 0) continue;
            if (p.topic.empty()) {
                error(p.where, "pipeline." + name + ".topics",
                      "the HTTP ingress is public (http_listen = \"" + cfg.engine.http_listen +
                          "\") and this pipeline has no topic: list the topics clients may name");
                continue;
            }
            p.topics = {p.topic};
            p.topics_default = true;
        }
    }

    // An HTTP listener reachable beyond this host with no token takes events from anyone who can
    // reach the port. Legal (a private network, a proxy in front that authenticates), so a warning.
    void warn_open_listener(Config& cfg) {
        const Engine& e = cfg.engine;
        if (!e.http_token.empty() || !ingress_public(e.http_listen)) return;
        cfg.warnings.push_back({e.http_listen_where, "engine.http_listen",
                                "\"" + e.http_listen + "\" accepts connections from other hosts and no http_token is "
                                "set: anyone who reaches the port can publish events and use the admin API; set "
                                "http_token or listen on 127.0.0.1"});
    }

    // A kafka sink's librdkafka message.timeout.ms above the direct_timeout of a direct-first
    // pipeline using it: the publish spills to the outbox at direct_timeout while librdkafka keeps
    // the message and may still deliver it, a duplicate of the row the relay sends later. Legal,
    // so a warning; at the key the user wrote (message.timeout.ms, else direct_timeout).
    // Outbox-first pipelines publish nothing direct; the relay waits at least 5 s.
    void check_kafka_timeouts(Config& cfg) {
        for (const auto& [name, p] : cfg.pipelines) {
            if (p.mode != Mode::DirectFirst) continue;
            auto use = p.uses.find("sink");
            const Component* sink = use == p.uses.end() ? nullptr : cfg.component("sink", use->second);
            if (!sink || sink->plugin != "kafka") continue;
            int64_t timeout_ms = kKafkaDefaultMessageTimeoutMs;
            const Value* set = nullptr;
            // delivery.timeout.ms is librdkafka's other name for it.
            auto it = sink->options.find("message.timeout.ms");
            if (it == sink->options.end()) it = sink->options.find("delivery.timeout.ms");
            std::string spelled = "message.timeout.ms";
            if (it != sink->options.end()) {
                spelled = it->first;
                set = &it->second;
                if (auto* i = std::get_if<int64_t>(&set->data)) {
                    timeout_ms = *i;
                } else if (auto* f = std::get_if<double>(&set->data); f && *f >= 0 && *f < 9.2e18) {
                    timeout_ms = static_cast<int64_t>(*f);
                } else if (auto* str = std::get_if<std::string>(&set->data);
                           str && !str->empty() && str->size() < 19 &&
                           std::all_of(str->begin(), str->end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
                    timeout_ms = std::stoll(*str);
                } else {
                    continue;  // not a number: librdkafka refuses it at validate, with its own message
                }
            }
            // 0 means no limit in librdkafka: the message is retried for ever.
            if (timeout_ms != 0 && timeout_ms <= p.direct_timeout_ms) continue;
            const std::string limit = timeout_ms == 0 ? std::string("0 (no limit)") : std::to_string(timeout_ms) + " ms";
            const std::string why =
                ": an event spilled to the outbox at direct_timeout may still be delivered by librdkafka until "
                "message.timeout.ms, a duplicate of the row the relay sends";
            if (set || p.direct_timeout_where.line == 0) {
                cfg.warnings.push_back(
                    {set ? set->where : sink->where, sink->id() + "." + spelled,
                     limit + (set ? "" : " (the kafka plugin's default)") + " is above the direct_timeout of pipeline '" +
                         name + "' (" + std::to_string(p.direct_timeout_ms) + " ms)" + why +
                         "; keep message.timeout.ms at or below direct_timeout"});
            } else {
                cfg.warnings.push_back(
                    {p.direct_timeout_where, "pipeline." + name + ".direct_timeout",
                     std::to_string(p.direct_timeout_ms) + " ms is below the message.timeout.ms of [" + sink->id() +
                         "] (" + limit + ", the kafka plugin's default)" + why + "; set \"message.timeout.ms\" in [" +
                         sink->id() + "] at or below direct_timeout"});
            }
        }
        cfg.warnings = in_file_order(std::move(cfg.warnings));
    }

    std::string file_;
    const LoadOptions& options_;
    std::vector<Diagnostic> diagnostics_;
};

}  // namespace

namespace {

// Where byte `offset` of `text` is, as the parser counts: lines from 1, columns in code points from 1.
Location location_of(std::string_view text, size_t offset, const std::string& name) {
    Location where{name, 1, 1};
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') ++where.line, where.column = 1;
        else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++where.column;
    }
    return where;
}

// The size and nesting bounds (kMaxConfigBytes, kMaxConfigDepth), checked by a scan of the text
// that knows just enough TOML to tell keys from values: strings and comments are skipped, dots
// count in keys only, brackets in values only. It reports nothing else: a malformed file is the
// parser's to describe, and this scan only has to keep such a file from being nested too deep.
void check_limits(std::string_view text, const std::string& name) {
    if (text.size() > kMaxConfigBytes)
        throw ConfigError({{location_of(text, kMaxConfigBytes, name), "",
                            "the file is larger than " + std::to_string(kMaxConfigBytes) +
                                " bytes (1 MiB), the limit for a configuration file"}});
    auto too_deep = [&](size_t offset) {
        throw ConfigError({{location_of(text, offset, name), "",
                            "nested deeper than " + std::to_string(kMaxConfigDepth) +
                                " levels (table-header parts, dotted-key parts, arrays and inline tables "
                                "together), the limit for a configuration file"}});
    };
    struct Container {
        bool inline_table;  // else an array
        int depth;          // its own level
    };
    std::vector<Container> open;  // never deeper than kMaxConfigDepth: too_deep throws first
    int section_depth = 0;        // the level of the last [header] table
    bool in_key = true, line_start = true;
    int key_parts = 1;
    int value_depth = 0;  // the level of a value that starts here
    auto key_base = [&] { return open.empty() ? section_depth : open.back().depth; };
    const size_t n = text.size();
    for (size_t i = 0; i < n; ++i) {
        const char c = text[i];
        if (c == '"' || c == '\'') {
            const bool multi = i + 2 < n && text[i + 1] == c && text[i + 2] == c;
            size_t j = i + (multi ? 3 : 1);
            for (; j < n; ++j) {
                if (c == '"' && text[j] == '\\') { ++j; continue; }
                if (!multi && text[j] == '\n') break;  // unterminated: the parser says so
                if (text[j] == c && (!multi || (j + 2 < n && text[j + 1] == c && text[j + 2] == c))) {
                    if (multi) {
                        j += 2;
                        while (j + 1 < n && text[j + 1] == c) ++j;  // up to two quotes end the content
                    }
                    break;
                }
            }
            i = std::min(j, n - 1) - (j < n && text[j] == '\n' ? 1 : 0);
            line_start = false;
            continue;
        }
        if (c == '#') {
            while (i + 1 < n && text[i + 1] != '\n') ++i;
            continue;
        }
        if (c == '\n') {
            if (open.empty()) in_key = true, key_parts = 1, line_start = true;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') continue;
        if (open.empty() && line_start && c == '[') {  // [a.b.c] or [[a.b.c]]
            const bool array_of_tables = i + 1 < n && text[i + 1] == '[';
            int parts = 1;
            size_t j = i + (array_of_tables ? 2 : 1);
            for (; j < n && text[j] != ']' && text[j] != '\n'; ++j) {
                if (text[j] == '"' || text[j] == '\'') {  // a quoted part: its dots are not separators
                    const char q = text[j];
                    for (++j; j < n && text[j] != q && text[j] != '\n'; ++j)
                        if (q == '"' && text[j] == '\\') ++j;
                    if (j >= n || text[j] == '\n') break;
                } else if (text[j] == '.' && ++parts + (array_of_tables ? 1 : 0) > kMaxConfigDepth) {
                    too_deep(j);
                }
            }
            section_depth = parts + (array_of_tables ? 1 : 0);
            i = j < n && text[j] == '\n' ? j - 1 : std::min(j, n - 1);
            in_key = line_start = false;
            continue;
        }
        line_start = false;
        if (in_key) {
            if (c == '.' && key_base() + ++key_parts > kMaxConfigDepth) too_deep(i);
            if (c == '=' && (value_depth = key_base() + key_parts) > kMaxConfigDepth) too_deep(i);
            if (c == '=') in_key = false;
            if (c == '}' && !open.empty() && open.back().inline_table) open.pop_back(), in_key = false;  // {}
            continue;
        }
        if (c == '[' || c == '{') {
            if (value_depth > kMaxConfigDepth) too_deep(i);
            open.push_back({c == '{', value_depth});
            if (c == '{') in_key = true, key_parts = 1;
            else value_depth = open.back().depth + 1;
        } else if (c == ']' || c == '}') {
            if (!open.empty()) open.pop_back();
        } else if (c == ',' && !open.empty()) {
            if (open.back().inline_table) in_key = true, key_parts = 1;
            else value_depth = open.back().depth + 1;
        }
    }
}

Config parse_and_build(const std::string& text, const std::string& name, const LoadOptions& options,
                       std::vector<Diagnostic>* errors) {
    check_limits(text, name);
    toml::table root;
    try {
        root = toml::parse(text, name);
    } catch (const toml::parse_error& e) {
        const auto& b = e.source().begin;
        throw ConfigError({{Location{name, b.line, b.column}, "", "TOML syntax error: " + std::string(e.description())}});
    }
    return Loader(name, options).build(root, errors);
}

// At most one byte past the size limit, so that a huge file (or /dev/zero) is refused by
// check_limits without being read whole.
std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError({{Location{path, 0, 0}, "", std::string("cannot read the file: ") + std::strerror(errno)}});
    std::string text(kMaxConfigBytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) throw ConfigError({{Location{path, 0, 0}, "", std::string("cannot read the file: ") + std::strerror(errno)}});
    text.resize(static_cast<size_t>(in.gcount()));
    return text;
}

}  // namespace

std::vector<KeyRow> engine_key_rows() { return Loader::engine_key_rows(); }
std::vector<KeyRow> pipeline_key_rows() { return Loader::pipeline_key_rows(); }

namespace {
std::vector<std::string> names_of(const std::vector<KeyRow>& rows) {
    std::vector<std::string> names;
    for (const auto& r : rows) names.insert(names.end(), r.keys.begin(), r.keys.end());
    return names;
}
}  // namespace

std::vector<std::string> engine_key_names() { return names_of(engine_key_rows()); }
std::vector<std::string> pipeline_key_names() { return names_of(pipeline_key_rows()); }

std::string with_key_tables(const std::string& readme) {
    std::string out = readme;
    for (const auto& [section, rows] : {std::pair{std::string("engine"), engine_key_rows()},
                                        std::pair{std::string("pipeline"), pipeline_key_rows()}}) {
        const std::string begin = "<!-- keys:" + section + " ", end = "<!-- /keys:" + section + " -->";
        const size_t b = out.find(begin);
        const size_t body = b == std::string::npos ? b : out.find("-->\n", b);
        const size_t e = out.find(end);
        if (b == std::string::npos || body == std::string::npos || e == std::string::npos || e < body)
            throw std::runtime_error("no '" + begin + "...-->' ... '" + end + "' block to fill");
        out.replace(body + 4, e - (body + 4), key_table_markdown(rows));
    }
    return out;
}

std::string key_table_markdown(const std::vector<KeyRow>& rows) {
    std::string md = "| key | default | meaning |\n|---|---|---|\n";
    for (const auto& r : rows) {
        std::string keys;
        for (const auto& k : r.keys) keys += (keys.empty() ? "`" : ", `") + k + "`";
        md += "| " + keys + " | " + r.default_text + " | " + r.meaning + " |\n";
    }
    return md;
}

Config load_string(const std::string& text, const std::string& name, const LoadOptions& options) {
    return parse_and_build(text, name, options, nullptr);
}

Config load_string(const std::string& text, const std::string& name, const LoadOptions& options,
                   std::vector<Diagnostic>& errors) {
    return parse_and_build(text, name, options, &errors);
}

Config load_file(const std::string& path, const LoadOptions& options) {
    return parse_and_build(read_file(path), path, options, nullptr);
}

Config load_file(const std::string& path, const LoadOptions& options, std::vector<Diagnostic>& errors) {
    return parse_and_build(read_file(path), path, options, &errors);
}

}  // namespace spillway::config
