// What the outbox store's source files share and nothing else sees: the transaction guard, the
// column vectors a read fills and the batch they become, and the session wrapper every call runs in.
#ifndef SPILLWAY_OUTBOX_COMMON_STORE_INTERNAL_HPP
#define SPILLWAY_OUTBOX_COMMON_STORE_INTERNAL_HPP

#include "outbox_store.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace spillway::plugins::outbox {

inline constexpr size_t kFetchChunk = 1000;  // rows a cursor read fetches at a time

// Readies `st` (uses and intos exchanged) to go to the server with its parameters in one round
// trip. A SOCI statement object is by default a named server-side statement: one round trip to
// prepare it and one to DEALLOCATE it besides the execute, three for a statement run once, as
// nearly all of ours are (measured in the server log: a claim and its completion were 23 round
// trips, 13 of them PREPARE and DEALLOCATE).
inline void prepare_once(soci::statement& st, const std::string& sql,
                         soci::details::statement_type type = soci::details::st_one_time_query) {
    st.alloc();
    st.prepare(sql, type);
    st.define_and_bind();
}

// One line of a database message: soci appends the statement text after a newline.
std::string short_message(const std::exception& e);
// This process's lease owner, "<host>-<pid>-<random>": made in leases.cpp, next to the test that
// reads it back (whether an owner is a dead engine of this host).
std::string make_owner();
// The ids of an encode_ids() text, "{1,2}" or "[1,2]".
std::vector<long long> decode_ids(const std::string& text);

// BEGIN on construction, ROLLBACK unless committed (a lost connection makes that a no-op).
class OutboxStore::Tx {
public:
    // An empty `begin`: the caller's next statement begins the transaction.
    Tx(soci::session& s, const std::string& begin) : s_(s) {
        if (!begin.empty()) s_ << begin;
    }
    ~Tx() {
        if (!done_) {
            try {
                s_ << "ROLLBACK";
            } catch (...) {
            }
        }
    }
    Tx(const Tx&) = delete;
    Tx& operator=(const Tx&) = delete;
    void commit() {
        s_ << "COMMIT";
        done_ = true;
    }

private:
    soci::session& s_;
    bool done_ = false;
};

// A claimed or listed batch: owns every string its sw_event spans point at.
struct RowBatch : sdk::Batch {
    struct Row {
        std::string event_id, pipeline, topic, key, payload, event_type, correlation_id, last_error;
        bool has_key = false, has_event_type = false, has_correlation_id = false, has_last_error = false;
        std::vector<std::pair<std::string, std::string>> headers;
        std::vector<sw_header> header_spans;
    };
    std::vector<Row> rows;
    // Set on a claimed batch (not on a list of dead letters): where claim_next goes on from.
    std::string claimed_for;  // the pipeline
    long long cursor = 0;
    std::vector<long long> after_rows;  // claim_next: the rows of the batch this one follows
    ClaimSeen seen, after_seen;  // this claim's, and that of the batch this one follows
};

// Column vectors for fetching up to `limit` rows at once, then the batch that owns the strings.
// The largest claim (and completion) made in one round trip: the trickle's. Past it the
// statements are faster (the database's window over the head and its skip list grow with the
// batch; at 500 rows a drain went at half the speed), and a round trip is a small part of a big
// batch's time.
constexpr size_t kOneTripRows = 64;

struct OutboxStore::RowSet {
    // SOCI 4.0.3's SQLite backend loses the row when a vector has one element, and reads 64-bit
    // integers into vectors truncated to 32 bits (also into strings, for INTEGER columns); so
    // vectors get at least two elements, and the 64-bit columns are selected CAST AS TEXT.
    explicit RowSet(size_t limit) : RowSet(limit, std::max<size_t>(limit, 2)) {}
    RowSet(size_t, size_t n)
        : id(n), created_at(n), flags(n), attempts(n), str(kStrings, std::vector<std::string>(n)),
          ind(kStrings, std::vector<soci::indicator>(n)), flags_ind(n), created_ind(n), attempts_ind(n) {}

    // Order of the string columns in select_columns.
    enum { kEv, kPl, kTp, kKy, kPa, kHd, kEt, kCi, kLe, kStrings };

    void bind(soci::statement& st) {
        st.exchange(soci::into(id));
        for (int k : {kEv, kPl, kTp, kKy, kPa, kHd, kEt, kCi}) st.exchange(soci::into(str[k], ind[k]));
        st.exchange(soci::into(flags, flags_ind));
        st.exchange(soci::into(created_at, created_ind));
        st.exchange(soci::into(attempts, attempts_ind));
        st.exchange(soci::into(str[kLe], ind[kLe]));
    }

    size_t size() const { return id.size(); }
    std::vector<long long> ids() const {
        std::vector<long long> out;
        for (const auto& s : id) out.push_back(std::stoll(s));
        return out;
    }

    // Keeps rows `picks` (ascending indexes) and drops the rest.
    void keep(const std::vector<size_t>& picks) {
        zip_columns(*this, [&](auto& v, auto&) {
            for (size_t w = 0; w < picks.size(); ++w)
                if (picks[w] != w) v[w] = std::move(v[picks[w]]);
            v.resize(picks.size());
        });
    }
    // Appends the rows of `more` after these.
    void append(RowSet&& more) {
        zip_columns(more, [](auto& v, auto& m) {
            v.insert(v.end(), std::make_move_iterator(m.begin()), std::make_move_iterator(m.end()));
        });
    }
    // Calls f(column, the same column of `other`) for every column vector: one list of the columns,
    // so that keep and append cannot leave one out.
    template <class F>
    void zip_columns(RowSet& other, F&& f) {
        f(id, other.id), f(created_at, other.created_at), f(flags, other.flags), f(attempts, other.attempts);
        f(flags_ind, other.flags_ind), f(created_ind, other.created_ind), f(attempts_ind, other.attempts_ind);
        for (size_t k = 0; k < str.size(); ++k) f(str[k], other.str[k]), f(ind[k], other.ind[k]);
    }

    // Rows that could not be decoded: row id and why.
    using Malformed = std::vector<std::pair<long long, std::string>>;
    // Moves the strings out: a RowSet is read once. Rows that cannot be decoded are left out and
    // listed in `malformed`; without it (a listing) they are kept as far as they decode.
    // `header_names`: Sql::header_names, the headers that columns.headers.<name> adds to each row.
    std::unique_ptr<sdk::Batch> to_batch(const char* db, const std::vector<std::string>& header_names,
                                         Malformed* malformed = nullptr);
    // Row i into `r`, its strings moved out. False when it cannot be decoded and `malformed` takes
    // it; without `malformed` it is kept as far as it decodes.
    bool decode_row(size_t i, RowBatch::Row& r, const std::vector<std::string>& header_names, Malformed* malformed);
    // Row i's event, pointing into `r`.
    sw_event event_of(size_t i, const RowBatch::Row& r) const;

    std::vector<std::string> id, created_at;
    std::vector<int> flags, attempts;
    std::vector<std::vector<std::string>> str;
    std::vector<std::vector<soci::indicator>> ind;
    std::vector<soci::indicator> flags_ind, created_ind, attempts_ind;
};

template <class F>
auto OutboxStore::with_session(const char* what, F&& f) -> decltype(f(std::declval<soci::session&>())) {
    Conn conn;
    try {
        conn = acquire();
    } catch (const sdk::Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(what, nullptr, e);
    }
    soci::session& s = *conn;
    ensure_connected(s, what);
    try {
        return f(s);
    } catch (const sdk::Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(what, &s, e);
    }
}

}  // namespace spillway::plugins::outbox

#endif
