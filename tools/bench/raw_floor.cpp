#include "raw_floor.hpp"

#include <algorithm>
#include <stdexcept>
#include <tuple>
#include <vector>

#include <poll.h>

namespace spillway::bench {

namespace {

// ORDER BY id with SKIP LOCKED: the oldest rows not being claimed by someone else this instant;
// rows leased (lease_until in the future, on the server's clock in microseconds as the engine's
// columns are) are not pending work. The claimed ids as an array, not joined: a join (UPDATE ...
// FROM c WHERE o.id = c.id) was planned as a hash join over a sequential scan of the whole table,
// 29 ms a claim of 500 from 100,000 rows instead of 6. RETURNING gives the rows in no set order:
// sorted after.
constexpr const char* kClaim =
    "WITH c AS (SELECT id FROM spillway_outbox WHERE pipeline = $1 AND state = 'pending' "
    "AND (lease_until IS NULL OR lease_until < CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)) "
    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "UPDATE spillway_outbox o SET lease_owner = $3, "
    "lease_until = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) + 30000000 "
    "WHERE o.id = ANY(ARRAY(SELECT id FROM c)) RETURNING o.id, o.event_id, o.key, o.payload";
// Fenced: a relay whose lease expired and was taken over deletes nothing of the new owner's.
constexpr const char* kSettle = "DELETE FROM spillway_outbox WHERE id = ANY($1::bigint[]) AND lease_owner = $2";

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

}  // namespace

FloorRelay::FloorRelay(const std::string& conninfo, std::string pipeline, std::string owner)
    : conn_(PQconnectdb(conninfo.c_str()), &PQfinish), pipeline_(std::move(pipeline)), owner_(std::move(owner)) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw std::runtime_error(std::string("floor: ") + PQerrorMessage(conn_.get()));
    // As the engine's claims and completions: a lost commit only means a row goes again. Set once
    // for the session, not per transaction.
    // Generic plans, as the engine's sessions: no planning per call (the plan is the same for
    // every call: one pipeline, id order).
    Result set(PQexec(conn_.get(), "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan"), &PQclear);
    if (PQresultStatus(set.get()) != PGRES_COMMAND_OK) throw std::runtime_error(std::string("floor: ") + PQerrorMessage(conn_.get()));
    for (auto [name, sql, n] : {std::tuple{"floor_claim", kClaim, 3}, std::tuple{"floor_settle", kSettle, 2}}) {
        Result r(PQprepare(conn_.get(), name, sql, n, nullptr), &PQclear);
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
            throw std::runtime_error(std::string("floor: prepare ") + name + ": " + PQerrorMessage(conn_.get()));
    }
}

PGresult* FloorRelay::exec(const char* name, int n, const char* const* values) {
    PGresult* r = PQexecPrepared(conn_.get(), name, n, values, nullptr, nullptr, 0);
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        PQclear(r);
        throw std::runtime_error(std::string("floor: ") + name + ": " + PQerrorMessage(conn_.get()));
    }
    return r;
}

size_t FloorRelay::round(size_t limit, RawProducer& producer) {
    const std::string lim = std::to_string(limit);
    const char* claim_args[] = {pipeline_.c_str(), lim.c_str(), owner_.c_str()};
    Result claimed(exec("floor_claim", 3, claim_args), &PQclear);
    const int n = PQntuples(claimed.get());
    if (n == 0) return 0;
    std::vector<std::pair<long long, RawRecord>> rows;
    rows.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
        rows.push_back({std::stoll(PQgetvalue(claimed.get(), i, 0)),
                        {PQgetvalue(claimed.get(), i, 1), PQgetvalue(claimed.get(), i, 2), PQgetvalue(claimed.get(), i, 3)}});
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<RawRecord> records;
    records.reserve(rows.size());
    std::string ids = "{";
    for (auto& [id, r] : rows) {
        if (ids.size() > 1) ids += ',';
        ids += std::to_string(id);
        records.push_back(std::move(r));
    }
    ids += "}";
    producer.send(records);
    const char* settle_args[] = {ids.c_str(), owner_.c_str()};
    Result settled(exec("floor_settle", 2, settle_args), &PQclear);
    return static_cast<size_t>(n);
}

void FloorRelay::listen(const std::string& channel) {
    Result r(PQexec(conn_.get(), ("LISTEN \"" + channel + "\"").c_str()), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) throw std::runtime_error(std::string("floor: LISTEN: ") + PQerrorMessage(conn_.get()));
}

bool FloorRelay::wait_for_ring(int timeout_ms) {
    // A notification may already be buffered: read while a claim or delete ran.
    auto drain = [&] {
        bool rang = false;
        while (PGnotify* n = PQnotifies(conn_.get())) {
            PQfreemem(n);
            rang = true;
        }
        return rang;
    };
    PQconsumeInput(conn_.get());
    if (drain()) return true;
    pollfd p{PQsocket(conn_.get()), POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    if (!PQconsumeInput(conn_.get())) throw std::runtime_error(std::string("floor: ") + PQerrorMessage(conn_.get()));
    return drain();
}

}  // namespace spillway::bench
