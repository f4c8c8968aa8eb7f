// GET /metrics checked by a small parser of the Prometheus text exposition format 0.0.4: HELP and
// TYPE lines, samples with labels, histogram buckets that are cumulative and end in +Inf == _count.
#include "http_env.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace spillway::http_test {
namespace {

using namespace std::chrono_literals;

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct Exposition {
    std::map<std::string, std::string> type, help;  // by family
    std::vector<Sample> samples;
};

double parse_value(const std::string& text, const std::string& where) {
    if (text == "+Inf") return INFINITY;
    if (text == "-Inf") return -INFINITY;
    if (text == "NaN") return NAN;
    size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        throw std::runtime_error(where + ": bad value '" + text + "'");
    }
    if (used != text.size()) throw std::runtime_error(where + ": bad value '" + text + "'");
    return v;
}

// Throws std::runtime_error naming the line on anything the format does not allow.
Exposition parse_exposition(const std::string& text) {
    static const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
    static const std::regex label_name_re("[a-zA-Z_][a-zA-Z0-9_]*");
    Exposition ex;
    std::set<std::string> families_with_samples;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    if (!text.empty() && text.back() != '\n') throw std::runtime_error("the exposition must end with a newline");
    while (std::getline(in, line)) {
        const std::string where = "line " + std::to_string(++n) + " '" + line + "'";
        if (line.empty()) continue;
        if (line[0] == '#') {
            std::istringstream ls(line);
            std::string hash, kind, family;
            ls >> hash >> kind >> family;
            if (kind != "HELP" && kind != "TYPE") continue;  // other comments are allowed
            if (!std::regex_match(family, name_re)) throw std::runtime_error(where + ": bad metric name");
            std::string rest;
            std::getline(ls, rest);
            if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
            if (kind == "TYPE") {
                if (ex.type.count(family)) throw std::runtime_error(where + ": second TYPE for " + family);
                if (families_with_samples.count(family)) throw std::runtime_error(where + ": TYPE after samples of " + family);
                static const std::set<std::string> types = {"counter", "gauge", "histogram", "summary", "untyped"};
                if (!types.count(rest)) throw std::runtime_error(where + ": unknown type '" + rest + "'");
                ex.type[family] = rest;
            } else {
                if (ex.help.count(family)) throw std::runtime_error(where + ": second HELP for " + family);
                ex.help[family] = rest;
            }
            continue;
        }
        Sample s;
        size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
        s.name = line.substr(0, i);
        if (!std::regex_match(s.name, name_re)) throw std::runtime_error(where + ": bad metric name");
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                const size_t eq = line.find('=', i);
                if (eq == std::string::npos) throw std::runtime_error(where + ": label without '='");
                const std::string lname = line.substr(i, eq - i);
                if (!std::regex_match(lname, label_name_re)) throw std::runtime_error(where + ": bad label name '" + lname + "'");
                if (eq + 1 >= line.size() || line[eq + 1] != '"') throw std::runtime_error(where + ": label value not quoted");
                std::string value;
                size_t j = eq + 2;
                for (; j < line.size() && line[j] != '"'; ++j) {
                    if (line[j] == '\\') {
                        if (++j >= line.size()) throw std::runtime_error(where + ": dangling escape");
                        if (line[j] == 'n') value += '\n';
                        else if (line[j] == '\\' || line[j] == '"') value += line[j];
                        else throw std::runtime_error(where + ": bad escape");
                    } else {
                        value += line[j];
                    }
                }
                if (j >= line.size()) throw std::runtime_error(where + ": unterminated label value");
                if (!s.labels.emplace(lname, value).second) throw std::runtime_error(where + ": label repeated");
                i = j + 1;
                if (i < line.size() && line[i] == ',') ++i;
                else if (i < line.size() && line[i] != '}') throw std::runtime_error(where + ": expected ',' or '}'");
            }
            if (i >= line.size()) throw std::runtime_error(where + ": unterminated label set");
            ++i;
        }
        if (i >= line.size() || line[i] != ' ') throw std::runtime_error(where + ": expected a space before the value");
        std::istringstream vs(line.substr(i + 1));
        std::string value, timestamp, extra;
        vs >> value >> timestamp >> extra;
        if (!extra.empty()) throw std::runtime_error(where + ": trailing text");
        s.value = parse_value(value, where);
        if (!timestamp.empty()) (void)std::stoll(timestamp);

        // The family a sample belongs to: histograms add _bucket, _sum and _count.
        std::string family = s.name;
        for (const char* suffix : {"_bucket", "_sum", "_count"}) {
            const std::string suf(suffix);
            if (s.name.size() > suf.size() && s.name.compare(s.name.size() - suf.size(), suf.size(), suf) == 0) {
                const std::string base = s.name.substr(0, s.name.size() - suf.size());
                if (ex.type.count(base) && ex.type[base] == "histogram") family = base;
            }
        }
        if (!ex.type.count(family)) throw std::runtime_error(where + ": sample before (or without) its TYPE line");
        if (ex.type[family] == "histogram" && family == s.name) throw std::runtime_error(where + ": bare histogram sample");
        if (ex.type[family] == "counter" && s.value < 0) throw std::runtime_error(where + ": negative counter");
        families_with_samples.insert(family);
        ex.samples.push_back(std::move(s));
    }
    // Histograms: per label set, le ascending, counts non-decreasing, +Inf last and == _count.
    for (const auto& [family, type] : ex.type) {
        if (type != "histogram") continue;
        std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
        std::map<std::map<std::string, std::string>, double> counts, sums;
        for (const auto& s : ex.samples) {
            auto labels = s.labels;
            if (s.name == family + "_bucket") {
                if (!labels.count("le")) throw std::runtime_error(family + ": bucket without le");
                const double le = parse_value(labels["le"], family + " le");
                labels.erase("le");
                buckets[labels].emplace_back(le, s.value);
            } else if (s.name == family + "_count") {
                counts[labels] = s.value;
            } else if (s.name == family + "_sum") {
                sums[labels] = s.value;
            }
        }
        for (const auto& [labels, bs] : buckets) {
            for (size_t k = 1; k < bs.size(); ++k) {
                if (!(bs[k].first > bs[k - 1].first)) throw std::runtime_error(family + ": le not ascending");
                if (bs[k].second < bs[k - 1].second) throw std::runtime_error(family + ": bucket counts decrease");
            }
            if (bs.empty() || !std::isinf(bs.back().first)) throw std::runtime_error(family + ": no +Inf bucket");
            if (!counts.count(labels)) throw std::runtime_error(family + ": no _count");
            if (!sums.count(labels)) throw std::runtime_error(family + ": no _sum");
            if (counts[labels] != bs.back().second) throw std::runtime_error(family + ": _count differs from the +Inf bucket");
        }
    }
    return ex;
}

TEST(MetricsFormat, TheParserRefusesMalformedExpositions) {
    EXPECT_NO_THROW(parse_exposition("# TYPE a counter\na{x=\"1\"} 2\n"));
    EXPECT_THROW(parse_exposition("a 1\n"), std::runtime_error);                                   // no TYPE
    EXPECT_THROW(parse_exposition("# TYPE a counter\na{x=1} 2\n"), std::runtime_error);            // unquoted
    EXPECT_THROW(parse_exposition("# TYPE a counter\na{x=\"1\" 2\n"), std::runtime_error);         // unterminated
    EXPECT_THROW(parse_exposition("# TYPE a counter\na two\n"), std::runtime_error);               // value
    EXPECT_THROW(parse_exposition("# TYPE a gauge\n# TYPE a gauge\n"), std::runtime_error);        // twice
    EXPECT_THROW(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                                  "h_sum 1\nh_count 1\n"),
                 std::runtime_error);  // decreasing
    EXPECT_THROW(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                                  "h_sum 1\nh_count 3\n"),
                 std::runtime_error);  // +Inf != count
    EXPECT_THROW(parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
                 std::runtime_error);  // no +Inf
}

TEST(MetricsFormat, MetricsEndpointServesAValidExpositionWithHistograms) {
    Env env;
    auto c = env.client();
    for (int i = 0; i < 5; ++i)
        ASSERT_EQ(c->Post("/v1/pipelines/orders/events", "{\"key\":\"k\",\"payload\":1}", "application/json")->status, 202);
    ASSERT_EQ(c->Post("/v1/pipelines/orders/events", "{\"key\":", "application/json")->status, 400);
    auto r = c->Get("/metrics");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u) << r->get_header_value("Content-Type");

    Exposition ex;
    try {
        ex = parse_exposition(r->body);
    } catch (const std::exception& e) {
        FAIL() << e.what() << "\n" << r->body;
    }
    for (const auto& [family, type] : ex.type) EXPECT_EQ(family.rfind("spillway_", 0), 0u) << family;
    ASSERT_EQ(ex.type["spillway_publish_latency_seconds"], "histogram") << r->body;
    EXPECT_EQ(ex.type["spillway_publish_total"], "counter");
    EXPECT_FALSE(ex.help["spillway_publish_total"].empty()) << "HELP line missing";
    EXPECT_EQ(ex.type["spillway_outbox_pending"], "gauge");

    double direct = 0, latency_count = 0, bad_requests = 0, direct_age_count = 0, connections = -1, dead = -1;
    for (const auto& s : ex.samples) {
        auto label = [&](const char* k) { return s.labels.count(k) ? s.labels.at(k) : std::string(); };
        if (s.name == "spillway_http_connections") connections = s.value;
        if (s.name == "spillway_outbox_dead") dead = s.value;
        if (s.name == "spillway_publish_total" && label("path") == "direct") direct += s.value;
        if (s.name == "spillway_publish_latency_seconds_count") latency_count += s.value;
        if (s.name == "spillway_delivery_age_seconds_count" && label("path") == "direct") direct_age_count += s.value;
        if (s.name == "spillway_http_requests_total" && label("code") == "400") bad_requests += s.value;
    }
    EXPECT_EQ(direct, 5);
    EXPECT_EQ(latency_count, 5);
    EXPECT_EQ(direct_age_count, 5);
    EXPECT_EQ(bad_requests, 1);
    EXPECT_GE(connections, 1) << "the scrape's own connection is open";
    EXPECT_EQ(dead, 0);

    // Prometheus' own linter on the same scrape (Debian package prometheus; tools/dev setup
    // installs it): names, HELP, TYPE, units and suffixes as its conventions want them.
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        std::cout << "promtool not found: the scrape was not linted (install the Debian package prometheus)\n";
        return;
    }
    const std::string scrape = env.dir() + "/scrape.txt", lint = env.dir() + "/lint.txt";
    std::ofstream(scrape) << r->body;
    const int rc = std::system(("promtool check metrics < " + scrape + " > " + lint + " 2>&1").c_str());
    std::ifstream in(lint);
    const std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(rc, 0) << "promtool check metrics:\n" << said;
}

// The relay's histograms move with an outbox-first pipeline's events: one processing time per
// batch (claim to Kafka's reports) and one delivery age per event, path outbox.
TEST(MetricsFormat, TheRelaysProcessingTimeAndTheOutboxDeliveryAgeAreObserved) {
    EnvOptions o;
    o.mode = "outbox-first";
    Env env(o);
    auto c = env.client();
    ASSERT_EQ(c->Post("/v1/pipelines/orders/events", R"([{"payload":1},{"payload":2},{"payload":3}])", "application/json")->status,
              202);
    double batches = 0, ages = 0, age_sum = 0, relayed = 0;
    const auto scrape = [&] {
        auto r = c->Get("/metrics");
        if (!r) return false;
        batches = ages = age_sum = relayed = 0;
        for (const auto& s : parse_exposition(r->body).samples) {
            const bool outbox = s.labels.count("path") && s.labels.at("path") == "outbox";
            if (s.name == "spillway_relay_published_total") relayed += s.value;
            if (s.name == "spillway_relay_processing_seconds_count") batches += s.value;
            if (s.name == "spillway_delivery_age_seconds_count" && outbox) ages += s.value;
            if (s.name == "spillway_delivery_age_seconds_sum" && outbox) age_sum += s.value;
        }
        return ages == 3 && relayed >= 3;  // one settle records both, one after the other
    };
    ASSERT_TRUE(test_support::wait_until(scrape, 30s)) << "delivery ages observed: " << ages;
    EXPECT_GE(batches, 1);
    EXPECT_GT(age_sum, 0);
    EXPECT_EQ(relayed, 3) << "one relay_published_total per row, as one delivery age";

    // Every append rings the doorbell; the ring the relay wakes to is timed, per notifier. (A round
    // the timer began first takes the rows and clears the ring: post until one is timed.)
    double wakes = 0;
    std::string notifier;
    ASSERT_TRUE(test_support::wait_until(
        [&] {
            c->Post("/v1/pipelines/orders/events", R"({"payload":4})", "application/json");
            auto r = c->Get("/metrics");
            if (!r) return false;
            for (const auto& s : parse_exposition(r->body).samples)
                if (s.name == "spillway_doorbell_wake_seconds_count" && s.labels.count("notifier")) {
                    wakes = s.value;
                    notifier = s.labels.at("notifier");
                }
            return wakes >= 1;
        },
        30s))
        << "no doorbell wake timed";
    EXPECT_FALSE(notifier.empty());
}

// event_type is a label only behind metrics_event_types, and only for the first N types: what a
// client sends cannot add series past the cap.
TEST(MetricsFormat, PublishTotalCarriesEventTypeOnlyBehindItsOptionAndWithinItsCap) {
    const auto types_seen = [](Env& env, const std::string& body) {
        auto c = env.client();
        EXPECT_EQ(c->Post("/v1/pipelines/orders/events", body, "application/json")->status, 202);
        std::map<std::string, double> by_type;
        for (const auto& s : parse_exposition(c->Get("/metrics")->body).samples)
            if (s.name == "spillway_publish_total")
                by_type[s.labels.count("event_type") ? s.labels.at("event_type") : "(no label)"] += s.value;
        return by_type;
    };
    const std::string body = R"([{"payload":1,"event_type":"a"},{"payload":2,"event_type":"b"},)"
                             R"({"payload":3,"event_type":"c"},{"payload":4,"event_type":"a"},)"
                             R"({"payload":5,"event_type":"d"},{"payload":6}])";
    {
        Env env;
        EXPECT_EQ(types_seen(env, body), (std::map<std::string, double>{{"(no label)", 6}}));
    }
    EnvOptions o;
    o.extra_pipeline = "metrics_event_types = 2";
    Env env(o);
    // A refused event's type takes no place (made-up types cannot fill the cap): a and b still do.
    EXPECT_EQ(env.client()
                  ->Post("/v1/pipelines/orders/events", R"({"topic":"no such topic!","payload":0,"event_type":"junk"})",
                         "application/json")
                  ->status,
              400);
    EXPECT_EQ(types_seen(env, body), (std::map<std::string, double>{{"a", 2}, {"b", 1}, {"other", 3}, {"", 1}}));
}

}  // namespace
}  // namespace spillway::http_test
