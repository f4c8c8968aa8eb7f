#include "engine/observe/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace spillway::observe {

Labels parse_labels(const char* text) {
    Labels out;
    if (!text) return out;
    std::string s(text);
    size_t start = 0;
    while (start < s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        const std::string piece = s.substr(start, end - start);
        if (const size_t eq = piece.find('='); eq != std::string::npos && eq > 0)
            out.emplace_back(piece.substr(0, eq), piece.substr(eq + 1));
        start = end + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
}

const std::vector<double>& Metrics::default_buckets() {
    static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5, 10};
    return b;
}

namespace {
// Label order never matters: {a,b} and {b,a} are one series.
Labels sorted(Labels l) {
    std::sort(l.begin(), l.end());
    return l;
}
}  // namespace

Metrics::Family& Metrics::family(const std::string& name, Type type) {
    Family& f = families_[name];
    if (f.values.empty() && f.histograms.empty()) f.type = type;
    return f;
}

void Metrics::add(const std::string& name, const Labels& labels, double delta) {
    std::lock_guard lock(mutex_);
    family(name, Type::Counter).values[sorted(labels)] += delta;
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
    std::lock_guard lock(mutex_);
    family(name, Type::Gauge).values[sorted(labels)] = value;
}

void Metrics::observe(const std::string& name, const Labels& labels, double value, uint64_t times) {
    if (times == 0) return;
    std::lock_guard lock(mutex_);
    record(histogram(name, labels), value, times);
}

void Metrics::observe_each(const std::string& name, const Labels& labels, const std::vector<double>& values) {
    if (values.empty()) return;
    std::lock_guard lock(mutex_);
    Histogram& h = histogram(name, labels);
    for (double value : values) record(h, value, 1);
}

Metrics::Histogram& Metrics::histogram(const std::string& name, const Labels& labels) {
    Histogram& h = family(name, Type::Histogram).histograms[sorted(labels)];
    if (h.buckets.empty()) h.buckets.assign(default_buckets().size(), 0);
    return h;
}

void Metrics::record(Histogram& h, double value, uint64_t times) {
    const auto& bounds = default_buckets();
    const auto it = std::lower_bound(bounds.begin(), bounds.end(), value);
    if (it != bounds.end()) h.buckets[static_cast<size_t>(it - bounds.begin())] += times;
    h.count += times;
    h.sum += value * static_cast<double>(times);
}

void Metrics::describe(const std::string& name, const std::string& help) {
    std::lock_guard lock(mutex_);
    families_[name].help = help;
}

double Metrics::value(const std::string& name, const Labels& labels) const {
    std::lock_guard lock(mutex_);
    auto f = families_.find(name);
    if (f == families_.end()) return 0;
    auto v = f->second.values.find(sorted(labels));
    return v == f->second.values.end() ? 0 : v->second;
}

uint64_t Metrics::count(const std::string& name, const Labels& labels) const {
    std::lock_guard lock(mutex_);
    auto f = families_.find(name);
    if (f == families_.end()) return 0;
    auto h = f->second.histograms.find(sorted(labels));
    return h == f->second.histograms.end() ? 0 : h->second.count;
}

namespace {

std::string escape_label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string escape_help(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string sanitize_name(const std::string& n) {
    std::string out;
    for (char c : n) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':') ? c : '_';
    return out;
}

std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    // The shortest text that reads back as the same double: 0.0005, not 0.00050000000000000001.
    char buf[32];
    for (int precision = 15; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

std::string label_set(const Labels& labels, const std::pair<std::string, std::string>* extra = nullptr) {
    if (labels.empty() && !extra) return "";
    std::string s = "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        s += (first ? "" : ",") + sanitize_name(k) + "=\"" + escape_label(v) + "\"";
        first = false;
    }
    if (extra) s += (first ? "" : ",") + extra->first + "=\"" + extra->second + "\"";
    return s + "}";
}

}  // namespace

std::string Metrics::render() const {
    std::lock_guard lock(mutex_);
    std::ostringstream o;
    const auto& bounds = default_buckets();
    for (const auto& [raw_name, f] : families_) {
        if (f.values.empty() && f.histograms.empty()) continue;
        const std::string name = "spillway_" + sanitize_name(raw_name);
        // A family nobody described is a third-party plugin's (the bundled plugins' are in the
        // catalogue): it still gets a HELP line, saying where to look.
        o << "# HELP " << name << " "
          << (f.help.empty() ? "Reported by a plugin (the component label names it), which gave no description"
                             : escape_help(f.help))
          << "\n";
        o << "# TYPE " << name << " "
          << (f.type == Type::Counter ? "counter" : f.type == Type::Gauge ? "gauge" : "histogram") << "\n";
        if (f.type != Type::Histogram) {
            for (const auto& [labels, v] : f.values) o << name << label_set(labels) << " " << number(v) << "\n";
            continue;
        }
        for (const auto& [labels, h] : f.histograms) {
            uint64_t cumulative = 0;
            for (size_t i = 0; i < bounds.size(); ++i) {
                cumulative += h.buckets[i];
                const std::pair<std::string, std::string> le{"le", number(bounds[i])};
                o << name << "_bucket" << label_set(labels, &le) << " " << cumulative << "\n";
            }
            const std::pair<std::string, std::string> inf{"le", "+Inf"};
            o << name << "_bucket" << label_set(labels, &inf) << " " << h.count << "\n";
            o << name << "_sum" << label_set(labels) << " " << number(h.sum) << "\n";
            o << name << "_count" << label_set(labels) << " " << h.count << "\n";
        }
    }
    return o.str();
}

}  // namespace spillway::observe
