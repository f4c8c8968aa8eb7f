#include "raw_store.hpp"

#include <soci/postgresql/soci-postgresql.h>

namespace spillway::bench {

RawStore::RawStore(const std::string& conninfo, std::string pipeline)
    : sql_(soci::postgresql, conninfo), pipeline_(std::move(pipeline)) {}

void RawStore::insert(const RawRecord& r, const std::string& topic) {
    std::string id = r.event_id, key = r.key, payload = r.payload, t = topic;
    soci::transaction tx(sql_);
    sql_ << "INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) VALUES (:e, :p, :t, :k, :v)",
        soci::use(id), soci::use(pipeline_), soci::use(t), soci::use(key), soci::use(payload);
    tx.commit();
}

void RawStore::backlog(size_t n, const std::string& topic, size_t payload_bytes, int keys) {
    long long count = static_cast<long long>(n), bytes = static_cast<long long>(payload_bytes), nkeys = keys;
    std::string t = topic;
    // Every drain, the engine's and the raw loop's, starts from a table without the dead rows of
    // the drains before it: else whichever ran first after a pause (autovacuum's) met the
    // cleanest index and looked up to 1.9x faster.
    sql_ << "VACUUM spillway_outbox";
    sql_ << "INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) "
            "SELECT gen_random_uuid()::text, :p, :t, 'key-' || (g % :k), "
            "'{\"n\":' || g || ',\"pad\":\"' || repeat('x', :b) || '\"}' FROM generate_series(1, :n) g",
        soci::use(pipeline_), soci::use(t), soci::use(nkeys), soci::use(bytes), soci::use(count);
    // Planner statistics for the new rows, as autovacuum would give them a moment later: without
    // them the raw loop's ORDER BY id LIMIT n can be planned as a sort of the whole table.
    sql_ << "ANALYZE spillway_outbox";
}

size_t RawStore::drain_round(size_t limit, RawProducer& producer) {
    soci::transaction tx(sql_);
    // As the engine's claim and complete transactions: a lost commit only means a row goes again.
    sql_ << "SET LOCAL synchronous_commit = off";
    long long lim = static_cast<long long>(limit);
    std::vector<long long> ids(limit);
    std::vector<std::string> event_ids(limit), keys(limit), payloads(limit);
    std::vector<soci::indicator> key_ind(limit);
    soci::statement st = (sql_.prepare << "SELECT id, event_id, key, payload FROM spillway_outbox "
                                          "WHERE pipeline = :p AND state = 'pending' ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED",
                          soci::use(pipeline_), soci::use(lim), soci::into(ids), soci::into(event_ids),
                          soci::into(keys, key_ind), soci::into(payloads));
    // execute(true) resizes the vectors to the rows fetched, but leaves them alone when there are none.
    if (!st.execute(true) || ids.empty()) {
        tx.commit();
        return 0;
    }
    std::vector<RawRecord> records(ids.size());
    std::string array = "{";
    for (size_t i = 0; i < ids.size(); ++i) {
        records[i] = {event_ids[i], key_ind[i] == soci::i_ok ? keys[i] : std::string(), payloads[i]};
        array += (i ? "," : "") + std::to_string(ids[i]);
    }
    array += "}";
    producer.send(records);
    sql_ << "DELETE FROM spillway_outbox WHERE id = ANY(CAST(:ids AS bigint[]))", soci::use(array);
    tx.commit();
    return ids.size();
}

long long RawStore::pending() {
    long long n = 0;
    sql_ << "SELECT count(*) FROM spillway_outbox WHERE pipeline = :p AND state = 'pending'", soci::use(pipeline_),
        soci::into(n);
    return n;
}

}  // namespace spillway::bench
