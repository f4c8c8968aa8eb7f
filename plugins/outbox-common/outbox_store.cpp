// The store's construction, its sessions (reconnect with backoff, errors as RETRY) and its lifecycle.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace spillway::plugins::outbox {

std::string engine_name(std::string_view member) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
    return std::string(member) + " (host " + host + ", pid " + std::to_string(getpid()) + ")";
}


// One line of a database message: soci appends the statement text after a newline.
std::string short_message(const std::exception& e) {
    std::string m = e.what();
    for (char& c : m)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    while (m.find("  ") != std::string::npos) m.erase(m.find("  "), 1);
    if (m.size() > 220) m.resize(220);
    return m;
}

OutboxStore::OutboxStore(sdk::Host host, const char* db_name, bool allow_schema, std::span<const sw_option> own_options)
    : Store(host), opts_(Options::read(host, own_options, db_name)), db_name_(db_name), owner_(make_owner()) {
    // Derived names (<table>_migrations, <table>_pending_idx, ...) must stay within 63 characters.
    sql_.table = quote_name(opts_.table, "table", allow_schema, 40);
    sql_.table_base = opts_.table.substr(opts_.table.find('.') == std::string::npos ? 0 : opts_.table.find('.') + 1);
    for (size_t i = 0; i < kColumnCount; ++i) sql_.c[i] = "\"" + opts_.columns[i] + "\"";
    sql_.postgres = std::string_view(db_name) == "postgres";
    sql_.json_fn = sql_.table.substr(0, sql_.table.size() - 1) + "_json\"";
    sql_.event_id_path = opts_.event_id_field;
    sql_.headers_path = opts_.headers_field;
    for (const auto& [name, column] : opts_.header_columns) {
        sql_.header_names.push_back(name);
        sql_.header_columns.push_back("\"" + column + "\"");
    }
    sql_.meta_table = sql_.table.substr(0, sql_.table.size() - 1) + "_meta\"";
    if (sql_.postgres) {
        const size_t dot = opts_.table.find('.');
        sql_.shard_fn = (dot == std::string::npos ? std::string() : "\"" + opts_.table.substr(0, dot) + "\".") +
                        "spillway_shard";
        sql_.shard_column = "\"spillway_shard\"";
        sql_.shard_value = sql_.shard_fn + "(:ky2, NULL)";
    }

    statements_ = Statements(sql_);
}

void OutboxStore::fail(const char* what, soci::session* s, const std::exception& e) {
    failed(e);
    const std::string msg = std::string(db_name_) + ": " + what + ": " + short_message(e);
    bool lost = false;
    try {
        lost = s && !s->is_connected();
    } catch (...) {
        lost = true;
    }
    if (lost) {
        std::lock_guard lock(down_mutex_);
        down_ = true;
        down_message_ = msg;
    }
    throw sdk::Error(SW_RETRY, msg);
}

// A lost session is reopened at most once per backoff step (100 ms doubling to 5 s), so a dead
// database is not hammered by every caller; in between, callers get RETRY at once.
void OutboxStore::ensure_connected(soci::session& s, const char* what) {
    bool connected = false;
    try {
        connected = alive(s);
    } catch (...) {
    }
    if (connected) return;
    const int64_t now = host().monotonic_us();
    if (now < reconnect_not_before_us_.load()) {
        std::lock_guard lock(down_mutex_);
        throw sdk::Error(SW_RETRY, std::string(db_name_) + ": " + what +
                                       ": database connection lost, reconnecting with backoff (" + down_message_ + ")");
    }
    try {
        s.reconnect();
        opened(s);
        reconnect_delay_ms_ = 0;
        down_ = false;
        host().info(std::string(db_name_) + ": reconnected to the database");
    } catch (const std::exception& e) {
        const int64_t delay = std::clamp<int64_t>(reconnect_delay_ms_.load() * 2, 100, 5000);
        reconnect_delay_ms_ = delay;
        reconnect_not_before_us_ = now + delay * 1000;
        const std::string msg = std::string(db_name_) + ": " + what + ": reconnect failed (next attempt in " +
                                std::to_string(delay) + " ms): " + short_message(e);
        {
            std::lock_guard lock(down_mutex_);
            down_ = true;
            down_message_ = msg;
        }
        host().warn(msg);
        throw sdk::Error(SW_RETRY, msg);
    }
}

const std::string& OutboxStore::hot_sql(Hot h) const {
    switch (h) {
        case Hot::kDue: return statements_.due;
        case Hot::kHead: return statements_.head;
        case Hot::kLeaseInsert: return statements_.lease_insert;
        case Hot::kClaim: return statements_.one_trip_claim;
        case Hot::kSettle: return statements_.one_trip_settle;
        case Hot::kShardedHead: return sharded_.head;
        case Hot::kShardedScan: return sharded_.scan;
        case Hot::kShardedScanByShard: return sharded_.scan_by_shard;
        default: return statements_.live_leases;
    }
}

void OutboxStore::start() {
    // Statements with an id list, which only the database subclass can spell.
    statements_.add_id_lists(sql_, in_ids(":ids"));
    if (const std::string r = shard_condition("r."); !r.empty()) {
        // Each read ends in ORDER BY or LIMIT; the condition goes in before it.
        auto with = [](const std::string& sql, const std::string& cond) {
            size_t at = sql.rfind(" ORDER BY ");
            if (at == std::string::npos) at = sql.rfind(" LIMIT ");
            return sql.substr(0, at) + " AND " + cond + sql.substr(at);
        };
        sharded_.due = with(statements_.due, shard_condition(""));
        sharded_.head = with(statements_.head, r);
        sharded_.scan = with(statements_.scan, r);
        sharded_.scan_ids = with(statements_.scan_ids, r);
        sharded_.scan_by_shard = scan_by_shard(sql_, claimable_shards_query(), shard_of_row("c."));
    }
    try {
        connect();
    } catch (const sdk::Error&) {
        throw;
    } catch (const std::exception& e) {
        throw sdk::Error(SW_RETRY, std::string(db_name_) + ": cannot connect: " + short_message(e));
    }
    if (opts_.auto_migrate) run_migrations();
    else check_migrated();
    host().info(std::string(db_name_) + ": outbox table " + opts_.table + " ready, lease owner " + owner_);
}

void OutboxStore::stop(int64_t) { disconnect(); }

void OutboxStore::health(sw_health& out) {
    if (down_) {
        std::lock_guard lock(down_mutex_);
        out.state = SW_HEALTH_DOWN;
        sdk::set_message(out, down_message_);
    } else {
        out.state = SW_HEALTH_UP;
    }
}

}  // namespace spillway::plugins::outbox
