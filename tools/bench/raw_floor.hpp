// The raw floor of a relay round on PostgreSQL (issue 22): the fewest statements a correct relay
// needs, so the engine's trickle figures read as a ratio that travels across machines. libpq
// directly, statements prepared once, each an autocommit statement (no BEGIN/COMMIT around them):
//   claim:  one statement that picks the oldest pending rows and leases them (owner, expiry);
//   produce every row and wait for Kafka's acks;
//   settle: one DELETE of the claimed ids, fenced by the lease owner.
// What this floor does NOT do, and the engine must: per-key holdback. A row whose key has an
// older row leased by another relay (or retried later) may be claimed and produced ahead of it;
// with one floor relay per pipeline and no failures, ids come back in order, so nothing is
// reordered here, but two such relays could reorder a key. It also never retries a failed
// produce (it throws), keeps no attempts count and no lease table; an expired lease is simply
// claimable again.
// What it costs: the lease is written into every claimed row, a new row version (and new index
// entries where its page has no room for a HOT update), about 15 us a row at batch 500 here. So
// it is the floor of a trickle (batch 1-10, where round trips dominate); from batch ~100 on the
// raw loop's lock-holding transaction, which writes nothing before its DELETE, drains faster, and
// the drain rows against this floor are not ratios to a floor there (issue 22).
#pragma once

#include "raw_kafka.hpp"

#include <libpq-fe.h>

#include <memory>
#include <string>

namespace spillway::bench {

class FloorRelay {
public:
    // `pipeline`: the rows it relays; `owner`: its lease owner (the fence of its DELETE).
    FloorRelay(const std::string& conninfo, std::string pipeline, std::string owner = "floor");
    FloorRelay(const FloorRelay&) = delete;
    FloorRelay& operator=(const FloorRelay&) = delete;

    // Claim up to `limit` rows, produce them, delete them. Returns the rows handled.
    size_t round(size_t limit, RawProducer& producer);

    // pgnotify wake: LISTEN on `channel` on this same session (one connection, as a lean relay
    // would), then wait_for_ring() blocks until a notification arrived or `timeout_ms` passed.
    void listen(const std::string& channel);
    bool wait_for_ring(int timeout_ms);

private:
    PGresult* exec(const char* name, int n, const char* const* values);
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
    std::string pipeline_, owner_;
};

}  // namespace spillway::bench
