// The pending-key probe of coordination = "shards" (SCALE-OUT.md §3.7, option a): which of a publish
// call's keys have a pending row in the outbox, whichever engine spilled it. A direct-first engine
// asks before sending keyed events straight to Kafka, and spills the keys found instead, so an
// event never overtakes an earlier one of its key that waits in the outbox.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include "codec.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace spillway::plugins::outbox {

namespace {

// Distinct keys per statement. One statement answers a publish call, however many keys it has; a
// call beyond this many keys takes one statement per chunk, so that no parameter grows unbounded.
constexpr size_t kKeysPerStatement = 1000;

std::string hex_upper(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += kDigits[b >> 4];
        out += kDigits[b & 0x0F];
    }
    return out;
}

// The key as the statement compares it with what append() stored, or nullopt when no row can hold
// it. append() binds the key's bytes as a text parameter:
// * PostgreSQL: libpq sends a text parameter as a C string, so a row holds the key up to its first
//   NUL; and a text column of a UTF-8 database refuses bytes that are not UTF-8 (the append of such
//   a key fails), so no row holds one. The form is the key itself, an element of a JSON array.
// * SQLite stores the bytes as they are, NUL and invalid UTF-8 included, which a JSON string cannot
//   carry (json_each ends a string at \u0000): the form is the bytes in hex, compared with hex(key).
std::optional<std::string> probe_form(std::string_view key, bool postgres) {
    if (!postgres) return hex_upper(key);
    key = key.substr(0, key.find('\0'));
    if (!is_utf8(key)) return std::nullopt;
    return std::string(key);
}

// Reads the keys (as probe_form spells them) that have a pending row: an equality on the pipeline
// and state = 'pending', so that PostgreSQL answers from the partial index of pending keys.
std::string probe_sql(const Sql& sql) {
    const auto& c = sql.c;
    const std::string where = " FROM " + sql.table + " WHERE " + c[kPipeline] + " = :p AND " + c[kState] +
                              " = 'pending' AND ";
    // = ANY(ARRAY(...)) rather than IN (SELECT ...): the array is an index condition of one scan of
    // (pipeline, key), where a semi-join would guess 100 rows from the function and may plan a hash.
    if (sql.postgres)
        return "SELECT DISTINCT " + c[kKey] + where + c[kKey] +
               " = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(:keys AS jsonb))))";
    return "SELECT DISTINCT hex(" + c[kKey] + ")" + where + "hex(" + c[kKey] + ") IN (SELECT value FROM json_each(:keys))";
}

}  // namespace

void OutboxStore::pending_among(std::string_view pipeline_name, std::span<const sw_bytes> keys,
                                std::span<uint8_t> found) {
    // Each distinct form once, with the positions of the keys that have it (duplicates in the call,
    // and on PostgreSQL keys that differ only after a NUL).
    std::unordered_map<std::string, std::vector<size_t>> positions;
    std::vector<const std::string*> forms;
    for (size_t i = 0; i < keys.size() && i < found.size(); ++i) {
        found[i] = 0;
        if (!sdk::present(keys[i])) continue;  // no key: no row of it
        std::optional<std::string> form = probe_form(sdk::view(keys[i]), sql_.postgres);
        if (!form) continue;
        auto [it, added] = positions.try_emplace(std::move(*form));
        it->second.push_back(i);
        if (added) forms.push_back(&it->first);
    }
    if (forms.empty()) return;
    const std::string text = probe_sql(sql_);
    with_session("pending_among", [&](soci::session& s) {
        std::string p(pipeline_name);
        for (size_t from = 0; from < forms.size(); from += kKeysPerStatement) {
            nlohmann::json list = nlohmann::json::array();
            for (size_t k = from; k < forms.size() && k < from + kKeysPerStatement; ++k) list.push_back(*forms[k]);
            std::string json_keys = list.dump();
            std::vector<std::string> hits(std::min(kFetchChunk, std::max<size_t>(forms.size() - from, 2)));
            soci::statement st(s);
            st.exchange(soci::use(p, "p"));
            st.exchange(soci::use(json_keys, "keys"));
            st.exchange(soci::into(hits));
            prepare_once(st, text);
            st.execute();
            while (st.fetch()) {
                for (const auto& hit : hits)
                    if (auto it = positions.find(hit); it != positions.end())
                        for (size_t i : it->second) found[i] = 1;
                hits.resize(std::min(kFetchChunk, std::max<size_t>(forms.size() - from, 2)));
            }
        }
    });
}

}  // namespace spillway::plugins::outbox
