#include "report.hpp"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <soci/version.h>

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <numeric>

namespace spillway::bench {

Stats Stats::of(std::vector<double> v) {
    Stats s;
    s.n = v.size();
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    // Nearest rank: the smallest sample with at least p of the samples at or below it.
    auto rank = [&](double p) {
        const size_t k = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
        return v[std::clamp<size_t>(k, 1, v.size()) - 1];
    };
    s.p50 = rank(0.50);
    s.p95 = rank(0.95);
    s.p99 = rank(0.99);
    s.max = v.back();
    s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    return s;
}

nlohmann::json Stats::json() const {
    return {{"samples", n}, {"p50_us", p50}, {"p95_us", p95}, {"p99_us", p99}, {"max_us", max}, {"mean_us", mean}};
}

Target at_most(const std::string& text, double value, double limit) { return {text, value <= limit}; }
Target at_least(const std::string& text, double value, double limit) { return {text, value >= limit}; }

Row latency_row(std::string measure, const std::vector<double>& ours_us, std::string baseline,
                const std::vector<double>& raw_us) {
    Row r;
    r.measure = std::move(measure);
    r.unit = "ms";
    r.latency = Stats::of(ours_us);
    r.value = r.latency->p99;
    r.baseline = std::move(baseline);
    if (!raw_us.empty()) {
        r.baseline_latency = Stats::of(raw_us);
        if (r.baseline_latency->p99 > 0) r.ratio = r.latency->p99 / r.baseline_latency->p99;
    }
    return r;
}

Row rate_row(std::string measure, std::string unit, double ours, std::string baseline, std::optional<double> raw) {
    Row r;
    r.measure = std::move(measure);
    r.unit = std::move(unit);
    r.value = ours;
    r.baseline = std::move(baseline);
    r.baseline_value = raw;
    if (raw && *raw > 0) r.ratio = ours / *raw;
    return r;
}

Row& Report::add(Row row) {
    rows_.push_back(std::move(row));
    return rows_.back();
}

namespace {
std::string ms(double us) {
    char b[32];
    std::snprintf(b, sizeof b, us < 10000 ? "%.3f" : "%.1f", us / 1000.0);
    return b;
}
std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, v >= 1000 ? "%.0f" : v >= 10 ? "%.1f" : "%.3f", v);
    return b;
}
}  // namespace

void Report::print() const {
    std::printf("\n== %s ==\n", scenario_.c_str());
    if (!pending_.empty()) {
        std::printf("pending: %s\n", pending_.c_str());
        return;
    }
    std::printf("%-46s %7s %9s %9s %9s %9s | %-22s %7s  %s\n", "measure", "n", "p50/val", "p95", "p99", "max",
                "raw (p50 / p99 | val)", "ratio", "targets");
    for (const auto& r : rows_) {
        std::string raw = "-";
        if (r.baseline_latency) raw = ms(r.baseline_latency->p50) + " / " + ms(r.baseline_latency->p99);
        else if (r.baseline_value) raw = num(*r.baseline_value);
        std::string ratio = r.ratio ? num(*r.ratio) + "x" : "-";
        std::string targets;
        for (const auto& t : r.targets) targets += (targets.empty() ? "" : "; ") + t.text + (t.met ? " ok" : " MISSED");
        if (r.latency) {
            const auto& s = *r.latency;
            std::printf("%-46s %7zu %9s %9s %9s %9s | %-22s %7s  %s\n", (r.measure + " (ms)").c_str(), s.n,
                        ms(s.p50).c_str(), ms(s.p95).c_str(), ms(s.p99).c_str(), ms(s.max).c_str(), raw.c_str(),
                        ratio.c_str(), targets.c_str());
        } else {
            std::printf("%-46s %7s %9s %9s %9s %9s | %-22s %7s  %s\n", (r.measure + " (" + r.unit + ")").c_str(), "",
                        num(r.value).c_str(), "", "", "", raw.c_str(), ratio.c_str(), targets.c_str());
        }
        if (!r.note.empty()) std::printf("    %s\n", r.note.c_str());
    }
    std::fflush(stdout);
}

nlohmann::json Report::json() const {
    nlohmann::json j;
    j["scenario"] = scenario_;
    j["settings"] = settings_;
    if (!pending_.empty()) j["pending"] = pending_;
    j["rows"] = nlohmann::json::array();
    for (const auto& r : rows_) {
        nlohmann::json row{{"measure", r.measure}, {"unit", r.unit}};
        if (r.latency) row["latency"] = r.latency->json();
        else row["value"] = r.value;
        if (!r.baseline.empty()) {
            row["baseline"] = r.baseline;
            if (r.baseline_latency) row["baseline_latency"] = r.baseline_latency->json();
            if (r.baseline_value) row["baseline_value"] = *r.baseline_value;
        }
        if (r.ratio) row["ratio"] = *r.ratio;
        for (const auto& t : r.targets) row["targets"].push_back({{"target", t.text}, {"met", t.met}});
        if (!r.note.empty()) row["note"] = r.note;
        j["rows"].push_back(std::move(row));
    }
    return j;
}

nlohmann::json machine_info() {
    nlohmann::json m;
    utsname u{};
    if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    m["host"] = host;
    m["cpus_online"] = sysconf(_SC_NPROCESSORS_ONLN);
    std::ifstream cpu("/proc/cpuinfo");
    for (std::string line; std::getline(cpu, line);)
        if (line.rfind("model name", 0) == 0) {
            m["cpu"] = line.substr(line.find(':') + 2);
            break;
        }
    std::ifstream mem("/proc/meminfo");
    std::string line;
    if (std::getline(mem, line)) m["memory"] = line;
    double load[3] = {};
    if (getloadavg(load, 3) == 3) m["loadavg"] = {load[0], load[1], load[2]};
    std::ifstream os("/etc/os-release");
    while (std::getline(os, line))
        if (line.rfind("PRETTY_NAME=", 0) == 0) m["os"] = line.substr(13, line.size() - 14);
    const std::time_t now = std::time(nullptr);
    char when[64];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    m["time_utc"] = when;
    m["versions"] = {{"spillway", SPILLWAY_VERSION},
                     {"librdkafka", rd_kafka_version_str()},
                     {"hiredis", std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR) + "." +
                                     std::to_string(HIREDIS_PATCH)},
                     {"soci", SOCI_LIB_VERSION},
#ifdef __VERSION__
                     {"compiler", "g++ " __VERSION__},
#endif
                     {"build", SPILLWAY_BUILD_TYPE}};
    if (FILE* git = popen("git -C " SPILLWAY_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null", "r")) {
        char rev[64] = {};
        if (std::fgets(rev, sizeof rev, git)) m["versions"]["git"] = std::string(rev, strcspn(rev, "\n"));
        pclose(git);
    }
    return m;
}

}  // namespace spillway::bench
