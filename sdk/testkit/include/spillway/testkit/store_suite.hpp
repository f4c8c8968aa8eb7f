// spillway/testkit/store_suite.hpp — the conformance suite every outbox store plugin must pass.
//
// Header-only GoogleTest, value-parameterised by a factory: the plugin's name and a function that
// returns the configuration of a fresh, empty store. Include it in one test file and instantiate:
//
//   #include <spillway/testkit/store_suite.hpp>
//   SPILLWAY_STORE_CONFORMANCE(MyStore, spillway::testkit::StoreFactory{"mystore", [] {
//       return spillway::testkit::Config{{"path", fresh_temp_file()}};
//   }});
//
// Link spillway::testkit and GTest::gtest_main. Every test goes through the C ABI only
// (testkit::StoreInstance), exactly as the engine uses a store. Two instances made from the same
// configuration share one store (the suite uses that for leases held by "someone else").
// The helpers (store_suite::append, claim, complete, stats, ...) serve a plugin's own extra tests;
// in further files of the same binary include this header after
// `#define SPILLWAY_STORE_SUITE_HELPERS_ONLY`, since the TEST_Ps may be defined only once.
#ifndef SPILLWAY_TESTKIT_STORE_SUITE_HPP
#define SPILLWAY_TESTKIT_STORE_SUITE_HPP

#include <spillway/testkit/descriptor_checks.hpp>
#include <spillway/testkit/host.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace spillway::testkit {

struct StoreFactory {
    std::string plugin;            // as for plugin_file(): "postgres", "sqlite", ...
    std::function<Config()> fresh; // configuration of a new, empty store
};

inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.plugin; }

namespace store_suite {

// One event to append; owns its bytes.
struct Event {
    std::string event_id;
    std::string pipeline = "orders";
    std::string topic = "orders.events";
    std::string key;
    bool has_key = true;
    std::string payload = "{}";
    std::vector<std::pair<std::string, std::string>> headers;
    std::string event_type;
    bool has_event_type = false;
    uint32_t flags = 0;
    int64_t created_at_us = 0;
};

// A claimed or listed row, copied out of the plugin's batch.
struct Row {
    int64_t row_id = 0;
    std::string event_id, pipeline, topic, key, payload, event_type, last_error;
    bool has_key = false, has_event_type = false, has_last_error = false;
    std::vector<std::pair<std::string, std::string>> headers;
    uint32_t flags = 0;
    int32_t attempts = 0;
    int64_t created_at_us = 0;
};

inline std::string str(sw_bytes b) { return b.ptr ? std::string(b.ptr, b.len) : std::string(); }
inline sw_bytes span(const std::string& s) { return sw_bytes{s.data(), s.size()}; }

inline int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Polls `pred` every 10 ms until it holds or `deadline` passes.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

inline sw_status append(StoreInstance& s, const std::vector<Event>& evs, std::vector<sw_result>* results = nullptr) {
    std::vector<std::vector<sw_header>> hdrs(evs.size());
    std::vector<sw_event> raw(evs.size());
    for (size_t i = 0; i < evs.size(); ++i) {
        const Event& e = evs[i];
        for (const auto& [n, v] : e.headers) hdrs[i].push_back({span(n), span(v)});
        sw_event& r = raw[i];
        r = sw_event{};
        r.struct_size = sizeof(sw_event);
        r.flags = e.flags;
        r.event_id = span(e.event_id);
        r.pipeline = span(e.pipeline);
        r.topic = span(e.topic);
        r.key = e.has_key ? span(e.key) : sw_bytes{nullptr, 0};
        r.payload = span(e.payload);
        r.event_type = e.has_event_type ? span(e.event_type) : sw_bytes{nullptr, 0};
        r.headers = hdrs[i].empty() ? nullptr : hdrs[i].data();
        r.n_headers = hdrs[i].size();
        r.created_at_us = e.created_at_us ? e.created_at_us : now_us();
    }
    std::vector<sw_result> out(evs.size());
    const sw_status st = s.vt().append(s.get(), raw.data(), raw.size(), out.data());
    if (results) *results = out;
    return st;
}

inline std::vector<Row> copy_batch(const sw_batch& b) {
    std::vector<Row> rows;
    for (size_t i = 0; i < b.n; ++i) {
        const sw_event& e = b.events[i];
        Row r;
        r.row_id = e.row_id;
        r.event_id = str(e.event_id);
        r.pipeline = str(e.pipeline);
        r.topic = str(e.topic);
        r.has_key = e.key.ptr != nullptr;
        r.key = str(e.key);
        r.payload = str(e.payload);
        r.has_event_type = e.event_type.ptr != nullptr;
        r.event_type = str(e.event_type);
        r.has_last_error = e.last_error.ptr != nullptr;
        r.last_error = str(e.last_error);
        for (size_t h = 0; h < e.n_headers; ++h) r.headers.emplace_back(str(e.headers[h].name), str(e.headers[h].value));
        r.flags = e.flags;
        r.attempts = e.attempts;
        r.created_at_us = e.created_at_us;
        rows.push_back(std::move(r));
    }
    return rows;
}

inline std::vector<Row> claim(StoreInstance& s, const std::string& pipeline, size_t limit, int64_t lease_ms = 30'000,
                              sw_status* status = nullptr) {
    sw_batch b{sizeof(sw_batch), nullptr, 0, nullptr};
    const sw_status st = s.vt().claim(s.get(), pipeline.c_str(), limit, lease_ms, &b);
    if (status) *status = st;
    else EXPECT_EQ(st, SW_OK) << s.host().last_error();
    std::vector<Row> rows = copy_batch(b);
    if (st == SW_OK) s.vt().release_batch(s.get(), &b);
    return rows;
}

// A claimed batch kept out (unreleased), as the relay keeps one while it is sent: what claim_next
// goes on from.
class HeldBatch {
public:
    // claim(pipeline, limit); with `prev`, claim_next(prev, limit).
    HeldBatch(StoreInstance& s, const std::string& pipeline, size_t limit, const HeldBatch* prev = nullptr)
        : s_(s) {
        status_ = prev ? s.vt().claim_next(s.get(), &prev->b_, limit, 30'000, &b_)
                       : s.vt().claim(s.get(), pipeline.c_str(), limit, 30'000, &b_);
        if (status_ != SW_OK) error_ = s.host().last_error();
        rows_ = copy_batch(b_);
    }
    ~HeldBatch() {
        if (status_ == SW_OK) s_.vt().release_batch(s_.get(), &b_);
    }
    HeldBatch(const HeldBatch&) = delete;
    HeldBatch& operator=(const HeldBatch&) = delete;
    sw_status status() const { return status_; }
    const std::string& error() const { return error_; }
    const std::vector<Row>& rows() const { return rows_; }

private:
    StoreInstance& s_;
    sw_batch b_{sizeof(sw_batch), nullptr, 0, nullptr};
    sw_status status_ = SW_OK;
    std::string error_;
    std::vector<Row> rows_;
};

// True when the store implements claim_next (optional since ABI 1.1).
inline bool has_claim_next(StoreInstance& s) {
    if (s.vt().struct_size < offsetof(sw_store_vtable, claim_next) + sizeof(void*) || !s.vt().claim_next) return false;
    sw_batch none{sizeof(sw_batch), nullptr, 0, nullptr}, out{sizeof(sw_batch), nullptr, 0, nullptr};
    const sw_status st = s.vt().claim_next(s.get(), &none, 1, 1000, &out);
    if (st == SW_OK) s.vt().release_batch(s.get(), &out);
    (void)s.host().last_error();
    return st != SW_UNSUPPORTED;
}

// True when the store implements pending_among (optional since ABI 1.2; needed for
// coordination = "shards").
inline bool has_pending_among(StoreInstance& s) {
    if (s.vt().struct_size < offsetof(sw_store_vtable, pending_among) + sizeof(void*) || !s.vt().pending_among)
        return false;
    const sw_status st = s.vt().pending_among(s.get(), "orders", nullptr, 0, nullptr);
    (void)s.host().last_error();
    return st != SW_UNSUPPORTED;
}

// pending_among over `keys` (nullopt: an absent key), as 0/1 per key; one call.
inline std::vector<int> pending_among(StoreInstance& s, const std::string& pipeline,
                                      const std::vector<std::optional<std::string>>& keys) {
    std::vector<sw_bytes> raw;
    for (const auto& k : keys) raw.push_back(k ? span(*k) : sw_bytes{nullptr, 0});
    std::vector<uint8_t> found(keys.size(), 7);  // the store must write every element
    EXPECT_EQ(s.vt().pending_among(s.get(), pipeline.c_str(), raw.data(), raw.size(), found.data()), SW_OK)
        << s.host().last_error();
    return std::vector<int>(found.begin(), found.end());
}

inline std::vector<Row> list_dead(StoreInstance& s, const std::string& pipeline, int64_t after = 0, size_t limit = 1000) {
    sw_batch b{sizeof(sw_batch), nullptr, 0, nullptr};
    EXPECT_EQ(s.vt().list_dead(s.get(), pipeline.c_str(), after, limit, &b), SW_OK) << s.host().last_error();
    std::vector<Row> rows = copy_batch(b);
    s.vt().release_batch(s.get(), &b);
    return rows;
}

inline sw_status complete(StoreInstance& s, const std::vector<Row>& rows, sw_status status, const std::string& msg = "") {
    std::vector<int64_t> ids;
    std::vector<sw_result> results(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        ids.push_back(rows[i].row_id);
        results[i].status = status;
        std::snprintf(results[i].message, sizeof(results[i].message), "%s", msg.c_str());
    }
    return s.vt().complete(s.get(), ids.data(), results.data(), ids.size());
}

inline sw_store_stats stats(StoreInstance& s, const std::string& pipeline) {
    sw_store_stats st{};
    st.struct_size = sizeof(st);
    EXPECT_EQ(s.vt().stats(s.get(), pipeline.c_str(), &st), SW_OK) << s.host().last_error();
    return st;
}

inline std::vector<std::string> event_ids(const std::vector<Row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.event_id);
    return out;
}

inline Event ev(std::string id, std::string key = "", bool has_key = true) {
    Event e;
    e.event_id = std::move(id);
    e.key = std::move(key);
    e.has_key = has_key && !e.key.empty();
    return e;
}

}  // namespace store_suite

class StoreConformance : public ::testing::TestWithParam<StoreFactory> {
protected:
    void SetUp() override {
        plugin_ = &load(GetParam().plugin);
        config_ = GetParam().fresh();
    }

    // A started instance on this test's store; `overrides` replace or add options.
    std::unique_ptr<StoreInstance> open(const Config& overrides = {}) {
        Config c = config_;
        for (const auto& [k, v] : overrides.values) c.values[k] = v;
        for (const auto& [k, v] : overrides.lists) c.lists[k] = v;
        return std::make_unique<StoreInstance>(*plugin_, c);
    }

    static Plugin& load(const std::string& name) { return checks::loaded_plugin(plugin_file(name)); }

    Plugin* plugin_ = nullptr;
    Config config_;
};

// The tests themselves: once per test binary. Other test files of the same binary that only want
// the helpers above define SPILLWAY_STORE_SUITE_HELPERS_ONLY before including this header.
#ifndef SPILLWAY_STORE_SUITE_HELPERS_ONLY

using namespace store_suite;  // NOLINT: the suite's own helpers, in the test bodies below

TEST_P(StoreConformance, DescriptorIsAThreadSafeStore) {
    EXPECT_EQ(plugin_->descriptor().kind, static_cast<uint32_t>(SW_KIND_STORE));
    const auto* vt = static_cast<const sw_store_vtable*>(plugin_->descriptor().vtable);
    ASSERT_NE(vt, nullptr);
    EXPECT_GE(vt->struct_size, sizeof(sw_store_vtable));
    for (const char* opt : {"table", "max_pending", "max_attempts", "backoff_base", "backoff_max", "retention",
                            "auto_migrate"})
        EXPECT_NE(plugin_->option(opt), nullptr) << "option " << opt;
}

TEST_P(StoreConformance, MigrateIsIdempotent) {
    auto s = open();
    EXPECT_EQ(s->vt().migrate(s->get()), SW_OK) << s->host().last_error();
    EXPECT_EQ(s->vt().migrate(s->get()), SW_OK) << s->host().last_error();
    auto again = open();  // auto_migrate at start on an existing schema
    EXPECT_EQ(stats(*again, "orders").pending, 0);
}

TEST_P(StoreConformance, AppendedEventRoundTripsThroughClaim) {
    auto s = open();
    Event a = ev("e-1", "k1");
    a.payload = R"({"n":1})";
    a.headers = {{"trace", "abc"}, {"bin", std::string("\x00\xff\x01", 3)}};
    a.event_type = "order.created";
    a.has_event_type = true;
    a.created_at_us = 1'700'000'000'000'000;
    Event b = ev("e-2", "", false);
    b.payload = std::string("\x00\x01\xfe binary", 10);
    b.flags = SW_EVENT_PAYLOAD_BINARY;
    Event c = ev("e-3", "k1");
    c.payload = "";
    std::vector<sw_result> res;
    ASSERT_EQ(append(*s, {a, b, c}, &res), SW_OK) << s->host().last_error();
    for (const auto& r : res) {
        EXPECT_EQ(r.status, SW_OK);
        EXPECT_EQ(r.flags & SW_RESULT_DUPLICATE, 0u);
    }
    const auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"e-1", "e-2", "e-3"}));
    EXPECT_GT(rows[0].row_id, 0);
    EXPECT_LT(rows[0].row_id, rows[1].row_id);
    EXPECT_EQ(rows[0].pipeline, "orders");
    EXPECT_EQ(rows[0].topic, "orders.events");
    EXPECT_TRUE(rows[0].has_key);
    EXPECT_EQ(rows[0].key, "k1");
    EXPECT_EQ(rows[0].payload, R"({"n":1})");
    EXPECT_EQ(rows[0].headers, a.headers);
    EXPECT_TRUE(rows[0].has_event_type);
    EXPECT_EQ(rows[0].event_type, "order.created");
    EXPECT_EQ(rows[0].created_at_us, a.created_at_us);
    EXPECT_EQ(rows[0].attempts, 0);
    EXPECT_FALSE(rows[1].has_key) << "an absent key stays absent";
    EXPECT_EQ(rows[1].payload, b.payload) << "binary payloads keep every byte";
    EXPECT_EQ(rows[1].flags & SW_EVENT_PAYLOAD_BINARY, SW_EVENT_PAYLOAD_BINARY);
    EXPECT_FALSE(rows[1].has_event_type);
    EXPECT_TRUE(rows[1].headers.empty());
    EXPECT_EQ(rows[2].payload, "");
}

TEST_P(StoreConformance, DuplicateEventIdIsNotASecondRow) {
    auto s = open();
    std::vector<sw_result> res;
    ASSERT_EQ(append(*s, {ev("d-1", "k"), ev("d-2", "k")}, &res), SW_OK) << s->host().last_error();
    ASSERT_EQ(append(*s, {ev("d-2", "k"), ev("d-3", "k"), ev("d-3", "k")}, &res), SW_OK) << s->host().last_error();
    ASSERT_EQ(res.size(), 3u);
    EXPECT_EQ(res[0].status, SW_OK);
    EXPECT_EQ(res[0].flags & SW_RESULT_DUPLICATE, SW_RESULT_DUPLICATE) << "d-2 was stored before";
    EXPECT_EQ(res[1].flags & SW_RESULT_DUPLICATE, 0u);
    EXPECT_EQ(res[2].flags & SW_RESULT_DUPLICATE, SW_RESULT_DUPLICATE) << "d-3 twice in one batch";
    EXPECT_EQ(stats(*s, "orders").pending, 3);
    EXPECT_EQ(event_ids(claim(*s, "orders", 10)), (std::vector<std::string>{"d-1", "d-2", "d-3"}));
}

TEST_P(StoreConformance, ClaimIsInIdOrderPerPipelineAndNeverTwice) {
    auto s = open();
    std::vector<Event> evs;
    for (int i = 0; i < 10; ++i) evs.push_back(ev("o-" + std::to_string(i), "", false));
    Event other = ev("x-1", "", false);
    other.pipeline = "other";
    evs.insert(evs.begin() + 3, other);
    ASSERT_EQ(append(*s, evs), SW_OK) << s->host().last_error();
    const auto first = claim(*s, "orders", 4);
    const auto second = claim(*s, "orders", 100);
    EXPECT_EQ(event_ids(first), (std::vector<std::string>{"o-0", "o-1", "o-2", "o-3"}));
    EXPECT_EQ(event_ids(second), (std::vector<std::string>{"o-4", "o-5", "o-6", "o-7", "o-8", "o-9"}));
    EXPECT_TRUE(claim(*s, "orders", 100).empty()) << "leased rows are not handed out again";
    EXPECT_EQ(event_ids(claim(*s, "other", 100)), (std::vector<std::string>{"x-1"}));
    EXPECT_TRUE(claim(*s, "nope", 100).empty());
}

TEST_P(StoreConformance, CompletingABatchTouchesOnlyItsOwnRows) {
    // A batch's ids need not be consecutive: the rows between them (another pipeline's, a key's
    // held back) stay as they were when it is settled.
    auto s = open();
    Event other = ev("x-1", "X");
    other.pipeline = "other";
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("b-1", "B"), other, ev("b-2", "B"), ev("c-1", "C")}), SW_OK);
    const auto a = claim(*s, "orders", 1);
    ASSERT_EQ(event_ids(a), (std::vector<std::string>{"a-1"}));
    const auto rest = claim(*s, "orders", 10);
    ASSERT_EQ(event_ids(rest), (std::vector<std::string>{"b-1", "b-2", "c-1"}));
    ASSERT_EQ(complete(*s, rest, SW_OK), SW_OK) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").pending, 1) << "a-1, leased, is still there";
    EXPECT_EQ(event_ids(claim(*s, "other", 10)), (std::vector<std::string>{"x-1"}));
}

TEST_P(StoreConformance, RowsOfOneKeyMayShareABatchInOrder) {
    auto s = open();
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("b-1", "B"), ev("a-2", "A"), ev("a-3", "A")}), SW_OK);
    const auto rows = claim(*s, "orders", 10);
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"a-1", "b-1", "a-2", "a-3"}));
}

TEST_P(StoreConformance, LaterRowsOfAKeyWaitForAnEarlierRowLeasedElsewhere) {
    auto one = open();
    auto two = open();
    ASSERT_EQ(append(*one, {ev("a-1", "A"), ev("a-2", "A"), ev("b-1", "B"), ev("n-1", "", false),
                            ev("n-2", "", false)}),
              SW_OK);
    EXPECT_EQ(event_ids(claim(*one, "orders", 1)), (std::vector<std::string>{"a-1"}));
    // a-2 is held back while a-1 is leased to `one`; other keys and keyless rows are not.
    EXPECT_EQ(event_ids(claim(*two, "orders", 10)), (std::vector<std::string>{"b-1", "n-1", "n-2"}));
    EXPECT_TRUE(claim(*two, "orders", 10).empty());
}

TEST_P(StoreConformance, LaterRowsOfAKeyWaitForAnEarlierRowLeasedHere) {
    // A batch whose settlement failed stays leased to its claimer: its keys must not be
    // overtaken by that same claimer's next claim either.
    auto s = open();
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("a-2", "A"), ev("b-1", "B")}), SW_OK);
    EXPECT_EQ(event_ids(claim(*s, "orders", 1)), (std::vector<std::string>{"a-1"}));
    EXPECT_EQ(event_ids(claim(*s, "orders", 10)), (std::vector<std::string>{"b-1"}));
}

TEST_P(StoreConformance, ClaimNextGoesOnAsIfTheBatchOutWereSettled) {
    // The relay claims the next batch while the last is being sent: the rows out hold no key back
    // (the relay keeps their order itself) and are not handed out again.
    auto s = open();
    if (!has_claim_next(*s)) GTEST_SKIP() << "claim_next is optional";
    auto other = open();
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("a-2", "A"), ev("b-1", "B"), ev("a-3", "A"), ev("a-4", "A"),
                          ev("n-1", "", false), ev("a-5", "A"), ev("a-6", "A"), ev("a-7", "A")}),
              SW_OK);
    HeldBatch first(*s, "orders", 3);
    ASSERT_EQ(first.status(), SW_OK) << first.error();
    EXPECT_EQ(event_ids(first.rows()), (std::vector<std::string>{"a-1", "a-2", "b-1"}));
    HeldBatch second(*s, "orders", 3, &first);
    ASSERT_EQ(second.status(), SW_OK) << second.error();
    EXPECT_EQ(event_ids(second.rows()), (std::vector<std::string>{"a-3", "a-4", "n-1"}));
    // The batch second followed may still be out too (the relay settles it meanwhile).
    HeldBatch third(*s, "orders", 2, &second);
    ASSERT_EQ(third.status(), SW_OK) << third.error();
    EXPECT_EQ(event_ids(third.rows()), (std::vector<std::string>{"a-5", "a-6"}));
    // But not one further back: first is still out, and its rows hold key A.
    HeldBatch fourth(*s, "orders", 10, &third);
    ASSERT_EQ(fourth.status(), SW_OK) << fourth.error();
    EXPECT_TRUE(fourth.rows().empty()) << "a-7 overtook a-1, still out two batches back";
    // For everyone else they are leased rows like any: nothing to claim.
    EXPECT_TRUE(claim(*other, "orders", 10).empty());
    EXPECT_EQ(stats(*s, "orders").leased, 8);
    for (const HeldBatch* b : {&first, &second}) ASSERT_EQ(complete(*s, b->rows(), SW_OK), SW_OK);
    HeldBatch fifth(*s, "orders", 10, &fourth);
    ASSERT_EQ(fifth.status(), SW_OK) << fifth.error();
    EXPECT_EQ(event_ids(fifth.rows()), (std::vector<std::string>{"a-7"})) << "an empty claim_next goes on too";
    for (const HeldBatch* b : {&third, &fifth}) ASSERT_EQ(complete(*s, b->rows(), SW_OK), SW_OK);
    EXPECT_EQ(stats(*s, "orders").pending, 0);
}

TEST_P(StoreConformance, ClaimNextStillHoldsBackWhatHeldAKeyBack) {
    auto s = open();
    if (!has_claim_next(*s)) GTEST_SKIP() << "claim_next is optional";
    auto other = open();
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("b-1", "B"), ev("a-2", "A"), ev("b-2", "B"), ev("c-1", "C")}), SW_OK);
    EXPECT_EQ(event_ids(claim(*other, "orders", 1)), (std::vector<std::string>{"a-1"}));
    HeldBatch first(*s, "orders", 1);
    ASSERT_EQ(first.status(), SW_OK) << first.error();
    EXPECT_EQ(event_ids(first.rows()), (std::vector<std::string>{"b-1"}));
    HeldBatch next(*s, "orders", 10, &first);
    ASSERT_EQ(next.status(), SW_OK) << next.error();
    EXPECT_EQ(event_ids(next.rows()), (std::vector<std::string>{"b-2", "c-1"})) << "a-2 waits for a-1, leased elsewhere";
}

TEST_P(StoreConformance, ClaimNextTakesAnEarlierRowThatBecameFree) {
    // A row the last claim passed over (leased elsewhere then, or committed since under a smaller
    // id) comes before the later rows of its key in the next batch.
    auto s = open();
    if (!has_claim_next(*s)) GTEST_SKIP() << "claim_next is optional";
    auto other = open();
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("b-1", "B"), ev("a-2", "A"), ev("b-2", "B"), ev("a-3", "A")}), SW_OK);
    const auto elsewhere = claim(*other, "orders", 1);
    ASSERT_EQ(event_ids(elsewhere), (std::vector<std::string>{"a-1"}));
    HeldBatch first(*s, "orders", 10);
    ASSERT_EQ(first.status(), SW_OK) << first.error();
    EXPECT_EQ(event_ids(first.rows()), (std::vector<std::string>{"b-1", "b-2"}));
    std::vector<int64_t> ids{elsewhere[0].row_id};
    ASSERT_EQ(other->vt().release_leases(other->get(), ids.data(), ids.size()), SW_OK) << other->host().last_error();
    HeldBatch next(*s, "orders", 10, &first);
    ASSERT_EQ(next.status(), SW_OK) << next.error();
    EXPECT_EQ(event_ids(next.rows()), (std::vector<std::string>{"a-1", "a-2", "a-3"}));
    EXPECT_EQ(next.rows()[0].payload, elsewhere[0].payload) << "whole rows, payload included";
}

TEST_P(StoreConformance, ClaimNextRefusesABatchItDidNotClaim) {
    auto s = open();
    if (!has_claim_next(*s)) GTEST_SKIP() << "claim_next is optional";
    ASSERT_EQ(append(*s, {ev("d-1", "A")}), SW_OK);
    auto rows = claim(*s, "orders", 1);
    ASSERT_EQ(complete(*s, rows, SW_REJECT, "poison"), SW_OK);
    sw_batch dead{sizeof(sw_batch), nullptr, 0, nullptr}, out{sizeof(sw_batch), nullptr, 0, nullptr};
    ASSERT_EQ(s->vt().list_dead(s->get(), "orders", 0, 10, &dead), SW_OK);
    EXPECT_NE(s->vt().claim_next(s->get(), &dead, 10, 1000, &out), SW_OK);
    EXPECT_FALSE(s->host().last_error().empty());
    s->vt().release_batch(s->get(), &dead);
}

TEST_P(StoreConformance, ManyBlockedRowsDoNotHideLaterKeys) {
    // The claimable rows can sit far behind a long run of held-back ones.
    auto s = open({{"backoff_base", "1h"}, {"backoff_max", "1h"}});
    std::vector<Event> evs;
    for (int i = 0; i < 300; ++i) evs.push_back(ev("a-" + std::to_string(i), "A"));
    evs.push_back(ev("b-1", "B"));
    ASSERT_EQ(append(*s, evs), SW_OK);
    auto head = claim(*s, "orders", 1);
    ASSERT_EQ(event_ids(head), (std::vector<std::string>{"a-0"}));
    ASSERT_EQ(complete(*s, head, SW_RETRY, "broker down"), SW_OK) << s->host().last_error();
    EXPECT_EQ(event_ids(claim(*s, "orders", 5)), (std::vector<std::string>{"b-1"}));
}

TEST_P(StoreConformance, RetryingRowHoldsBackItsKeyUntilDue) {
    auto s = open({{"backoff_base", "400ms"}, {"backoff_max", "400ms"}});
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("a-2", "A"), ev("b-1", "B")}), SW_OK);
    auto first = claim(*s, "orders", 1);
    ASSERT_EQ(event_ids(first), (std::vector<std::string>{"a-1"}));
    ASSERT_EQ(complete(*s, first, SW_RETRY, "broker down"), SW_OK) << s->host().last_error();
    // a-1 waits for its retry and a-2 waits for a-1; b-1 goes.
    EXPECT_EQ(event_ids(claim(*s, "orders", 10)), (std::vector<std::string>{"b-1"}));
    std::vector<Row> again;
    ASSERT_TRUE(eventually([&] { again = claim(*s, "orders", 10); return !again.empty(); }, std::chrono::seconds(10)));
    ASSERT_EQ(event_ids(again), (std::vector<std::string>{"a-1", "a-2"}));
    EXPECT_EQ(again[0].attempts, 1);
    EXPECT_TRUE(again[0].has_last_error);
    EXPECT_EQ(again[0].last_error, "broker down");
    EXPECT_EQ(again[1].attempts, 0);
}

TEST_P(StoreConformance, RetryBacksOffExponentiallyWithinBounds) {
    auto s = open({{"backoff_base", "300ms"}, {"backoff_max", "5s"}, {"max_attempts", "0"}});
    ASSERT_EQ(append(*s, {ev("r-1", "", false)}), SW_OK);
    auto rows = claim(*s, "orders", 1);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(complete(*s, rows, SW_RETRY, "1"), SW_OK);
    ASSERT_TRUE(eventually([&] { rows = claim(*s, "orders", 1); return !rows.empty(); }, std::chrono::seconds(10)));
    const auto d1 = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(d1, std::chrono::milliseconds(140)) << "first retry waits at least half of backoff_base";
    const auto t1 = std::chrono::steady_clock::now();
    ASSERT_EQ(complete(*s, rows, SW_RETRY, "2"), SW_OK);
    EXPECT_TRUE(claim(*s, "orders", 1).empty());
    ASSERT_TRUE(eventually([&] { rows = claim(*s, "orders", 1); return !rows.empty(); }, std::chrono::seconds(10)));
    EXPECT_GE(std::chrono::steady_clock::now() - t1, std::chrono::milliseconds(290)) << "second step doubles";
    EXPECT_EQ(rows[0].attempts, 2);
    EXPECT_EQ(rows[0].last_error, "2");
}

TEST_P(StoreConformance, ExpiredLeaseIsReclaimable) {
    auto crashed = open();
    auto survivor = open();
    ASSERT_EQ(append(*crashed, {ev("l-1", "A"), ev("l-2", "A")}), SW_OK);
    const auto lost = claim(*crashed, "orders", 10, 300);
    ASSERT_EQ(lost.size(), 2u);
    EXPECT_TRUE(claim(*survivor, "orders", 10).empty()) << "a live lease is respected";
    std::vector<Row> rows;
    ASSERT_TRUE(eventually([&] { rows = claim(*survivor, "orders", 10); return !rows.empty(); }, std::chrono::seconds(10)));
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"l-1", "l-2"}));
    // The old owner's late completion no longer touches rows leased to someone else.
    ASSERT_EQ(complete(*crashed, lost, SW_OK), SW_OK);
    EXPECT_EQ(stats(*survivor, "orders").pending, 2);
    ASSERT_EQ(complete(*survivor, rows, SW_OK), SW_OK);
    EXPECT_EQ(stats(*survivor, "orders").pending, 0);
}

TEST_P(StoreConformance, LeasesOfAProcessThatDiedOnThisHostAreTakenBackAtOnce) {
    // A restarted engine must not wait out the lease its killed predecessor held (30 s by default):
    // its first claim takes back the leases of processes of this host that no longer run.
    {
        auto s = open();
        ASSERT_EQ(append(*s, {ev("d-1", "A"), ev("d-2", "A"), ev("d-3", "B")}), SW_OK);
    }
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The predecessor: claims with a long lease and dies without settling or giving back.
        int code = 1;
        try {
            auto s = open();
            if (claim(*s, "orders", 2, 600'000).size() == 2) code = 0;
        } catch (...) {
        }
        std::_Exit(code);
    }
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (waitpid(child, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            FAIL() << "the predecessor process did not finish";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the predecessor could not claim";
    auto s = open();
    EXPECT_EQ(stats(*s, "orders").leased, 2) << "the dead process's lease is still live in the store";
    // One claim, no waiting: the rows come back, in order, to the successor.
    EXPECT_EQ(event_ids(claim(*s, "orders", 10)), (std::vector<std::string>{"d-1", "d-2", "d-3"}));
}

TEST_P(StoreConformance, CompleteOkRemovesRowsFromPending) {
    auto s = open();
    ASSERT_EQ(append(*s, {ev("c-1", "A"), ev("c-2", "B")}), SW_OK);
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(complete(*s, rows, SW_OK), SW_OK) << s->host().last_error();
    const auto st = stats(*s, "orders");
    EXPECT_EQ(st.pending, 0);
    EXPECT_EQ(st.dead, 0);
    EXPECT_TRUE(claim(*s, "orders", 10).empty());
    // The event id is still unique afterwards only while the row exists: a new append is a new row.
}

TEST_P(StoreConformance, PartlySettledBatchKeepsTheRestLeased) {
    // A relay may settle part of a batch (the events it could send) and hold the rest: those stay
    // leased, their keys held back, until settled or released.
    auto s = open();
    auto other = open();
    ASSERT_EQ(append(*s, {ev("p-1", "A"), ev("p-2", "A"), ev("p-3", "B")}), SW_OK);
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(rows.size(), 3u);
    ASSERT_EQ(complete(*s, {rows[0]}, SW_OK), SW_OK) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").pending, 2);
    EXPECT_EQ(stats(*s, "orders").leased, 2);
    EXPECT_TRUE(claim(*other, "orders", 10).empty()) << "the unsettled rows are still leased";
    std::vector<int64_t> rest{rows[1].row_id, rows[2].row_id};
    ASSERT_EQ(s->vt().release_leases(s->get(), rest.data(), rest.size()), SW_OK) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").leased, 0);
    EXPECT_EQ(event_ids(claim(*other, "orders", 10)), (std::vector<std::string>{"p-2", "p-3"}));
}

TEST_P(StoreConformance, ReleasedLeasesComeBackWithoutAnAttempt) {
    auto s = open();
    ASSERT_EQ(append(*s, {ev("rl-1", "A")}), SW_OK);
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(rows.size(), 1u);
    std::vector<int64_t> ids{rows[0].row_id};
    ASSERT_EQ(s->vt().release_leases(s->get(), ids.data(), ids.size()), SW_OK) << s->host().last_error();
    rows = claim(*s, "orders", 10);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].attempts, 0);
}

TEST_P(StoreConformance, RejectAndExhaustedRetriesBecomeDeadLetters) {
    auto s = open({{"max_attempts", "2"}, {"backoff_base", "1ms"}, {"backoff_max", "1ms"}});
    ASSERT_EQ(append(*s, {ev("p-1", "A"), ev("t-1", "B")}), SW_OK);
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(rows.size(), 2u);
    ASSERT_EQ(complete(*s, {rows[0]}, SW_REJECT, "poison"), SW_OK);
    ASSERT_EQ(complete(*s, {rows[1]}, SW_RETRY, "timeout 1"), SW_OK);
    ASSERT_TRUE(eventually([&] { rows = claim(*s, "orders", 10); return !rows.empty(); }, std::chrono::seconds(10)));
    ASSERT_EQ(event_ids(rows), (std::vector<std::string>{"t-1"}));
    ASSERT_EQ(complete(*s, rows, SW_RETRY, "timeout 2"), SW_OK);
    const auto st = stats(*s, "orders");
    EXPECT_EQ(st.pending, 0);
    EXPECT_EQ(st.dead, 2);
    const auto dead = list_dead(*s, "orders");
    ASSERT_EQ(event_ids(dead), (std::vector<std::string>{"p-1", "t-1"}));
    EXPECT_EQ(dead[0].last_error, "poison");
    EXPECT_EQ(dead[1].last_error, "timeout 2");
    EXPECT_EQ(dead[1].attempts, 2);
    EXPECT_TRUE(claim(*s, "orders", 10).empty()) << "dead rows are never claimed";
}

TEST_P(StoreConformance, DeadLettersReplayWithTheSameEventIdAndPurge) {
    auto s = open();
    ASSERT_EQ(append(*s, {ev("z-1", "A"), ev("z-2", "B"), ev("z-3", "C")}), SW_OK);
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(complete(*s, rows, SW_REJECT, "bad"), SW_OK);
    // Paging through the dead letters.
    const auto page1 = list_dead(*s, "orders", 0, 2);
    ASSERT_EQ(event_ids(page1), (std::vector<std::string>{"z-1", "z-2"}));
    EXPECT_EQ(event_ids(list_dead(*s, "orders", page1.back().row_id, 2)), (std::vector<std::string>{"z-3"}));
    // Replay one by event id: it is pending again with the same event id.
    const std::string z1 = "z-1";
    sw_bytes one = span(z1);
    int64_t n = -1;
    ASSERT_EQ(s->vt().replay_dead(s->get(), "orders", &one, 1, &n), SW_OK) << s->host().last_error();
    EXPECT_EQ(n, 1);
    rows = claim(*s, "orders", 10);
    ASSERT_EQ(event_ids(rows), (std::vector<std::string>{"z-1"}));
    EXPECT_EQ(rows[0].attempts, 0);
    ASSERT_EQ(complete(*s, rows, SW_OK), SW_OK);
    // Purge one, then replay all that is left.
    const std::string z2 = "z-2";
    sw_bytes two = span(z2);
    ASSERT_EQ(s->vt().purge_dead(s->get(), "orders", &two, 1, &n), SW_OK);
    EXPECT_EQ(n, 1);
    ASSERT_EQ(s->vt().replay_dead(s->get(), "orders", nullptr, 0, &n), SW_OK);
    EXPECT_EQ(n, 1);
    rows = claim(*s, "orders", 10);
    ASSERT_EQ(event_ids(rows), (std::vector<std::string>{"z-3"}));
    ASSERT_EQ(complete(*s, rows, SW_REJECT, "bad again"), SW_OK);
    ASSERT_EQ(s->vt().purge_dead(s->get(), "orders", nullptr, 0, &n), SW_OK);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(stats(*s, "orders").dead, 0);
}

TEST_P(StoreConformance, AppendRefusesBeyondMaxPendingPerPipeline) {
    auto s = open({{"max_pending", "3"}});
    ASSERT_EQ(append(*s, {ev("m-1", "", false), ev("m-2", "", false)}), SW_OK);
    EXPECT_EQ(append(*s, {ev("m-3", "", false), ev("m-4", "", false)}), SW_FULL) << "2 + 2 > 3";
    EXPECT_NE(s->host().last_error().find("max_pending=3"), std::string::npos) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").pending, 2) << "nothing of a refused batch is stored";
    ASSERT_EQ(append(*s, {ev("m-3", "", false)}), SW_OK);
    EXPECT_EQ(append(*s, {ev("m-5", "", false)}), SW_FULL);
    Event other = ev("o-1", "", false);
    other.pipeline = "other";
    EXPECT_EQ(append(*s, {other}), SW_OK) << "the bound is per pipeline";
    auto rows = claim(*s, "orders", 1);
    ASSERT_EQ(complete(*s, rows, SW_OK), SW_OK);
    EXPECT_EQ(append(*s, {ev("m-5", "", false)}), SW_OK) << "room again after a publish";
}

TEST_P(StoreConformance, StatsArePerPipeline) {
    auto s = open();
    Event old = ev("s-1", "A");
    old.created_at_us = now_us() - 5'000'000;
    Event other = ev("s-9", "A");
    other.pipeline = "other";
    ASSERT_EQ(append(*s, {old, ev("s-2", "B"), ev("s-3", "C"), other}), SW_OK);
    auto rows = claim(*s, "orders", 2);
    ASSERT_EQ(rows.size(), 2u);
    ASSERT_EQ(complete(*s, {rows[1]}, SW_REJECT, "x"), SW_OK);
    const auto st = stats(*s, "orders");
    EXPECT_EQ(st.pending, 2) << "s-1 (leased) and s-3";
    EXPECT_EQ(st.leased, 1);
    EXPECT_EQ(st.dead, 1);
    EXPECT_GE(st.oldest_pending_age_ms, 4'500);
    EXPECT_LT(st.oldest_pending_age_ms, 600'000);
    const auto o = stats(*s, "other");
    EXPECT_EQ(o.pending, 1);
    EXPECT_EQ(o.dead, 0);
    const auto none = stats(*s, "nope");
    EXPECT_EQ(none.pending, 0);
    EXPECT_EQ(none.oldest_pending_age_ms, 0);
}

TEST_P(StoreConformance, PendingKeysAreVisitedOncePerPendingRow) {
    // The host keeps a key sticky until as many of its rows are settled as were visited: a key
    // visited once for three rows would go direct after its first delivery and overtake the rest.
    auto s = open();
    Event other = ev("k-9", "Z");
    other.pipeline = "other";
    ASSERT_EQ(append(*s, {ev("k-1", "A"), ev("k-2", "A"), ev("k-3", "B"), ev("k-4", "", false), ev("k-5", "A"),
                          ev("k-6", "C"), other}),
              SW_OK);
    // Leased and backing-off rows are still pending: they count too; settled ones do not.
    const auto first = claim(*s, "orders", 1);
    ASSERT_EQ(event_ids(first), (std::vector<std::string>{"k-1"}));
    auto c_rows = claim(*s, "orders", 10);
    ASSERT_EQ(complete(*s, std::vector<Row>(c_rows.end() - 1, c_rows.end()), SW_OK), SW_OK);  // k-6 (C)
    std::map<std::string, int> keys;
    auto visit = [](void* user, sw_bytes k) { ++(*static_cast<std::map<std::string, int>*>(user))[str(k)]; };
    ASSERT_EQ(s->vt().pending_keys(s->get(), "orders", visit, &keys), SW_OK) << s->host().last_error();
    EXPECT_EQ(keys, (std::map<std::string, int>{{"A", 3}, {"B", 1}}));
}

// The pending-key probe of coordination = "shards": a key is found while the pipeline has a row of
// it that no relay has settled (pending, leased or backing off), whichever engine appended it.
TEST_P(StoreConformance, PendingAmongFindsKeysWithUnsettledRowsOnly) {
    for (const char* retention : {"0s", "1h"}) {  // settled rows deleted, or kept as published
        SCOPED_TRACE(std::string("retention ") + retention);
        config_ = GetParam().fresh();
        auto s = open({{"backoff_base", "60s"}, {"backoff_max", "60s"}, {"retention", retention}});
        if (!has_pending_among(*s)) GTEST_SKIP() << "pending_among is optional";
        Event other = ev("o-1", "O");
        other.pipeline = "other";
        ASSERT_EQ(append(*s, {ev("l-1", "L"), ev("r-1", "R"), ev("p-1", "P"), ev("x-1", "X"), ev("w-1", "W"),
                              ev("k-1", "", false), other}),
                  SW_OK);
        const auto rows = claim(*s, "orders", 4);  // l-1 stays leased
        ASSERT_EQ(event_ids(rows), (std::vector<std::string>{"l-1", "r-1", "p-1", "x-1"}));
        ASSERT_EQ(complete(*s, {rows[1]}, SW_RETRY, "later"), SW_OK) << s->host().last_error();  // backs off
        ASSERT_EQ(complete(*s, {rows[2]}, SW_OK), SW_OK) << s->host().last_error();
        ASSERT_EQ(complete(*s, {rows[3]}, SW_REJECT, "poison"), SW_OK) << s->host().last_error();  // dead
        EXPECT_EQ(pending_among(*s, "orders", {"W", "L", "R", "P", "X", "O", "N"}),
                  (std::vector<int>{1, 1, 1, 0, 0, 0, 0}))
            << "W pending, L leased, R backing off; P published, X dead, O another pipeline's, N never appended";
        EXPECT_EQ(pending_among(*s, "other", {"O", "W"}), (std::vector<int>{1, 0}));
        // Another instance on the same store (another engine) sees the same rows.
        auto elsewhere = open();
        EXPECT_EQ(pending_among(*elsewhere, "orders", {"L", "P"}), (std::vector<int>{1, 0}));
    }
}

TEST_P(StoreConformance, PendingAmongTakesNoKeysDuplicatesAndAbsentKeys) {
    auto s = open();
    if (!has_pending_among(*s)) GTEST_SKIP() << "pending_among is optional";
    EXPECT_TRUE(pending_among(*s, "orders", {}).empty());
    Event empty_key = ev("e-1");
    empty_key.has_key = true;  // the key "" is a key
    ASSERT_EQ(append(*s, {ev("a-1", "A"), ev("a-2", "A"), empty_key}), SW_OK);
    EXPECT_EQ(pending_among(*s, "orders", {"A", "B", "A", std::nullopt, "A", ""}), (std::vector<int>{1, 0, 1, 0, 1, 1}));
}

// Keys are bytes. A key compares equal only to itself, and a key whose append the store took is
// found by the same bytes, whatever they are; a key it refused (PostgreSQL refuses bytes that are not
// UTF-8 in a text column) is not found, and asking about it is no error.
TEST_P(StoreConformance, PendingAmongComparesKeysAsTheAppendStoredThem) {
    auto s = open();
    if (!has_pending_among(*s)) GTEST_SKIP() << "pending_among is optional";
    ASSERT_EQ(append(*s, {ev("k-1", "k")}), SW_OK);
    EXPECT_EQ(pending_among(*s, "orders", {"k", "K", "k ", " k", "kk"}), (std::vector<int>{1, 0, 0, 0, 0}));
    using namespace std::string_literals;
    const std::vector<std::string> odd = {"nul\0inside"s, "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
                                          "quote\" back\\slash ' semi;colon", "[\"json\"]", "%_like*",
                                          "\xff\xfe not utf-8"};
    for (size_t i = 0; i < odd.size(); ++i) {
        SCOPED_TRACE("odd key " + std::to_string(i));
        const sw_status appended = append(*s, {ev("odd-" + std::to_string(i), odd[i])});
        (void)s->host().last_error();
        EXPECT_EQ(pending_among(*s, "orders", {odd[i], "k"}), (std::vector<int>{appended == SW_OK ? 1 : 0, 1}));
    }
}

TEST_P(StoreConformance, PendingAmongAnswersThousandsOfKeysInOneCall) {
    auto s = open();
    if (!has_pending_among(*s)) GTEST_SKIP() << "pending_among is optional";
    constexpr int kKeys = 2500;
    std::vector<Event> evs;
    std::vector<std::optional<std::string>> keys;
    std::vector<int> expected;
    for (int i = 0; i < kKeys; ++i) {
        const std::string key = "key-" + std::to_string(i);
        keys.push_back(key);
        expected.push_back(i % 7 == 3 ? 1 : 0);
        if (i % 7 == 3) evs.push_back(ev("m-" + std::to_string(i), key));
    }
    ASSERT_EQ(append(*s, evs), SW_OK) << s->host().last_error();
    EXPECT_EQ(pending_among(*s, "orders", keys), expected);
}

TEST_P(StoreConformance, ConcurrentAppendsAllLand) {
    auto s = open();
    constexpr int kThreads = 4, kEach = 50;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i)
                if (append(*s, {ev("ca-" + std::to_string(t) + "-" + std::to_string(i), "k" + std::to_string(i % 5))}) !=
                    SW_OK)
                    ++failures;
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").pending, kThreads * kEach);
}

TEST_P(StoreConformance, ConcurrentClaimersNeverShareARowNorBreakKeyOrder) {
    constexpr int kKeys = 8, kPerKey = 60, kKeyless = 40;
    {
        auto s = open();
        std::vector<Event> evs;
        for (int i = 0; i < kPerKey; ++i)
            for (int k = 0; k < kKeys; ++k) evs.push_back(ev("k" + std::to_string(k) + "-" + std::to_string(i), "k" + std::to_string(k)));
        for (int i = 0; i < kKeyless; ++i) evs.push_back(ev("n-" + std::to_string(i), "", false));
        ASSERT_EQ(append(*s, evs), SW_OK) << s->host().last_error();
    }
    std::mutex m;
    std::map<std::string, int> next_seq;  // per key: the sequence number the next claim must carry
    std::set<std::string> seen;
    std::vector<std::string> problems;
    std::atomic<int> done{0};
    auto claimer = [&] {
        auto s = open();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (done.load() < kKeys * kPerKey + kKeyless && std::chrono::steady_clock::now() < deadline) {
            sw_status st = SW_OK;
            auto rows = claim(*s, "orders", 7, 60'000, &st);
            if (st != SW_OK) continue;  // e.g. SQLite's lock from the other claimer: try again
            {
                std::lock_guard lock(m);
                for (const auto& r : rows) {
                    if (!seen.insert(r.event_id).second) problems.push_back("handed out twice: " + r.event_id);
                    if (!r.has_key) continue;
                    const int seq = std::stoi(r.event_id.substr(r.event_id.find('-') + 1));
                    int& expect = next_seq[r.key];
                    if (seq != expect) problems.push_back(r.event_id + " before seq " + std::to_string(expect));
                    expect = seq + 1;
                }
            }
            while (!rows.empty() && complete(*s, rows, SW_OK) != SW_OK) {
            }
            done += static_cast<int>(rows.size());
        }
    };
    std::thread a(claimer), b(claimer);
    a.join();
    b.join();
    EXPECT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems.front();
    EXPECT_EQ(seen.size(), static_cast<size_t>(kKeys * kPerKey + kKeyless));
    auto s = open();
    EXPECT_EQ(stats(*s, "orders").pending, 0);
}

TEST_P(StoreConformance, BadTableNameIsAConfigError) {
    Config c = config_;
    c.values["table"] = "outbox; DROP TABLE x";
    HostContext host(*plugin_, c);
    EXPECT_EQ(validate(*plugin_, host), SW_INVALID_CONFIG);
    const auto errs = host.config_errors();
    ASSERT_FALSE(errs.empty());
    EXPECT_EQ(errs[0].first, "table");
}

#endif  // SPILLWAY_STORE_SUITE_HELPERS_ONLY

}  // namespace spillway::testkit

// Instantiates the suite for one store: NAME is a test-name prefix, FACTORY a StoreFactory. Use
// it at namespace scope (googletest pastes the fixture's name into identifiers, so it is brought
// in unqualified).
#define SPILLWAY_STORE_CONFORMANCE(NAME, FACTORY)                                                         \
    using ::spillway::testkit::StoreConformance;                                                          \
    INSTANTIATE_TEST_SUITE_P(NAME, StoreConformance, ::testing::Values(FACTORY),                          \
                             [](const ::testing::TestParamInfo<::spillway::testkit::StoreFactory>& info) { \
                                 return info.param.plugin;                                                \
                             })

#endif
