#include "options.hpp"

#include <set>

namespace spillway::plugins::outbox {

bool is_identifier(std::string_view name, size_t max_len) {
    if (name.empty() || name.size() > max_len) return false;
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    if (!alpha(name[0])) return false;
    for (char c : name)
        if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
    return true;
}

std::string quote_name(std::string_view name, const char* key, bool allow_schema, size_t max_len) {
    const size_t dot = name.find('.');
    auto bad = [&](const std::string& why) {
        return sdk::ConfigError(key, "'" + std::string(name) + "' is not a valid " + key + ": " + why);
    };
    if (dot == std::string_view::npos) {
        if (!is_identifier(name, max_len))
            throw bad("use letters, digits and '_' (not starting with a digit), at most " +
                      std::to_string(max_len) + " characters");
        return "\"" + std::string(name) + "\"";
    }
    if (!allow_schema) throw bad("a schema prefix is not supported by this store");
    const std::string_view schema = name.substr(0, dot), rest = name.substr(dot + 1);
    if (!is_identifier(schema) || !is_identifier(rest, max_len))
        throw bad("use schema.table, each an identifier of letters, digits and '_'");
    return "\"" + std::string(schema) + "\".\"" + std::string(rest) + "\"";
}

namespace {

// "a.b.c" as its member names, each an identifier (they are spelled into SQL text).
std::vector<std::string> json_path(const std::string& text, const char* key) {
    std::vector<std::string> out;
    if (text.empty()) return out;
    size_t from = 0;
    for (;;) {
        const size_t dot = text.find('.', from);
        std::string part = text.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
        if (!is_identifier(part))
            throw sdk::ConfigError(key, "'" + text + "' is not a valid " + key +
                                            ": use JSON member names of letters, digits and '_', joined by '.' "
                                            "(e.g. \"event_id\" or \"metadata.event_id\")");
        out.push_back(std::move(part));
        if (dot == std::string::npos) return out;
        from = dot + 1;
    }
}

}  // namespace

Options Options::read(const sdk::Host& host) {
    Options o;
    o.table = host.string("table");
    o.max_pending = host.integer("max_pending");
    o.max_attempts = host.integer("max_attempts");
    o.backoff_base_ms = host.duration_ms("backoff_base");
    o.backoff_max_ms = host.duration_ms("backoff_max");
    o.retention_ms = host.duration_ms("retention");
    o.keep_published = host.boolean("keep_published");
    o.auto_migrate = host.boolean("auto_migrate");
    if (o.max_pending < 0) throw sdk::ConfigError("max_pending", "max_pending must be >= 0 (0 = unbounded)");
    if (o.max_attempts < 0) throw sdk::ConfigError("max_attempts", "max_attempts must be >= 0 (0 = unlimited)");
    if (o.backoff_base_ms < 1) throw sdk::ConfigError("backoff_base", "backoff_base must be at least 1ms");
    if (o.backoff_max_ms < o.backoff_base_ms)
        throw sdk::ConfigError("backoff_max", "backoff_max must be >= backoff_base");
    o.adopt_pipeline = host.opt_string("adopt_pipeline").value_or("");
    for (char ch : o.adopt_pipeline)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            throw sdk::ConfigError("adopt_pipeline", "'" + o.adopt_pipeline +
                                                         "' is not a pipeline name: use letters, digits, '_' and '-'");
    o.event_id_field = json_path(host.opt_string("event_id_field").value_or(""), "event_id_field");
    o.headers_field = json_path(host.opt_string("headers_field").value_or(""), "headers_field");
    o.adopt_order_by = host.opt_string("adopt_order_by").value_or("");
    if (!o.adopt_order_by.empty() && !is_identifier(o.adopt_order_by))
        throw sdk::ConfigError("adopt_order_by", "'" + o.adopt_order_by +
                                                     "' is not a valid column name: use letters, digits and '_' "
                                                     "(not starting with a digit), at most 63 characters");
    std::set<std::string> seen;
    for (size_t c = 0; c < kColumnCount; ++c) {
        const std::string key = std::string("columns.") + kColumnNames[c];
        std::string name = host.opt_string(key.c_str()).value_or(kColumnNames[c]);
        if (!is_identifier(name))
            throw sdk::ConfigError(key, "'" + name + "' is not a valid column name: use letters, digits "
                                        "and '_' (not starting with a digit), at most 63 characters");
        if (!seen.insert(name).second)
            throw sdk::ConfigError(key, "column '" + name + "' is mapped to two outbox fields");
        o.columns[c] = std::move(name);
    }
    return o;
}

}  // namespace spillway::plugins::outbox
