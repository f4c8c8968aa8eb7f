// The raw baseline for the outbox: plain SOCI statements on the engine's own outbox table, under
// a pipeline name no engine relay reads ("raw"), on the same PostgreSQL.
#pragma once

#include "raw_kafka.hpp"

#include <soci/soci.h>

#include <string>
#include <vector>

namespace spillway::bench {

class RawStore {
public:
    explicit RawStore(const std::string& conninfo, std::string pipeline = "raw");

    // One INSERT and COMMIT, what an outbox append is at its simplest.
    void insert(const RawRecord& r, const std::string& topic);
    // Adds `n` pending rows in one statement (a backlog to drain), keys key-0..key-<keys-1> in turn.
    void backlog(size_t n, const std::string& topic, size_t payload_bytes, int keys = 100);
    // One claim/produce/delete round: lock up to `limit` pending rows (oldest first, SKIP LOCKED),
    // send them with `producer`, delete them, commit. Returns the rows handled.
    size_t drain_round(size_t limit, RawProducer& producer);
    long long pending();

private:
    soci::session sql_;
    std::string pipeline_;
};

}  // namespace spillway::bench
