#include "engine/observe/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

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

enum class Kind { Counter, Gauge, Histogram, Refused };

template <class T> constexpr Kind kind_of();
template <> constexpr Kind kind_of<prometheus::Counter>() { return Kind::Counter; }
template <> constexpr Kind kind_of<prometheus::Gauge>() { return Kind::Gauge; }
template <> constexpr Kind kind_of<prometheus::Histogram>() { return Kind::Histogram; }

// A plugin may name a metric or label anything; the format takes [a-zA-Z0-9_:] (labels: no ':'),
// and a label name may not begin with a digit or "__" (reserved).
std::string sanitize(const std::string& n, bool label) {
    std::string out;
    for (char c : n)
        out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c == ':' && !label)) ? c : '_';
    if (label && (out.empty() || std::isdigit(static_cast<unsigned char>(out[0])) || out.rfind("__", 0) == 0))
        out = "label_" + out;
    return out;
}

// Label order never matters: {a,b} and {b,a} are one series.
Labels sorted(Labels l) {
    std::sort(l.begin(), l.end());
    return l;
}

prometheus::Labels to_prometheus(const Labels& labels) {
    prometheus::Labels out;
    for (const auto& [k, v] : labels) out.emplace(sanitize(k, true), v);
    return out;
}

}  // namespace

struct Metrics::Impl {
    struct Entry {
        Kind kind = Kind::Refused;
        void* family = nullptr;            // prometheus::Family<T>* for the kind
        std::map<Labels, void*> series;    // T* per label set (nullptr: refused by the format)
    };

    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    mutable std::mutex mutex;
    std::map<std::string, std::string> help;
    std::unordered_map<std::string, Entry> entries;

    template <class T>
    prometheus::Family<T>* build(const std::string& name, const std::string& text) {
        if constexpr (std::is_same_v<T, prometheus::Counter>)
            return &prometheus::BuildCounter().Name(name).Help(text).Register(*registry);
        else if constexpr (std::is_same_v<T, prometheus::Gauge>)
            return &prometheus::BuildGauge().Name(name).Help(text).Register(*registry);
        else
            return &prometheus::BuildHistogram().Name(name).Help(text).Register(*registry);
    }

    // The family `name` of type T, made on first use; nullptr when the name holds another type or
    // the format refuses it. Called with `mutex` held.
    template <class T>
    Entry* entry(const std::string& name) {
        auto it = entries.find(name);
        if (it != entries.end()) return it->second.kind == kind_of<T>() ? &it->second : nullptr;
        Entry& e = entries[name];
        const auto h = help.find(name);
        // A family nobody described is a third-party plugin's (the bundled plugins' are in the
        // catalogue): it still gets a HELP line, saying where to look.
        const std::string text = h != help.end() ? h->second
                                                 : "Reported by a plugin (the component label names it), which gave no description";
        try {
            e.family = build<T>("spillway_" + sanitize(name, false), text);
            e.kind = kind_of<T>();
        } catch (const std::exception&) {  // another type under the same exposed name, or a bad name
            return nullptr;
        }
        return &e;
    }

    // The series of family `name` with `labels`, made on first use; nullptr when refused.
    template <class T>
    T* series(const std::string& name, const Labels& labels) {
        std::lock_guard lock(mutex);
        Entry* e = entry<T>(name);
        if (!e) return nullptr;
        Labels key = sorted(labels);
        if (auto it = e->series.find(key); it != e->series.end()) return static_cast<T*>(it->second);
        T* made = nullptr;
        try {
            auto* family = static_cast<prometheus::Family<T>*>(e->family);
            prometheus::Labels labels = to_prometheus(key);
            if constexpr (std::is_same_v<T, prometheus::Histogram>) {
                // "le" is the bucket's own label; prometheus-cpp would write it twice.
                if (!labels.count("le")) made = &family->Add(labels, default_buckets());
            } else {
                made = &family->Add(labels);
            }
        } catch (const std::exception&) {  // a label name the format refuses ("le" on a histogram, "__x")
        }
        e->series.emplace(std::move(key), made);
        return made;
    }

    // The series if it exists (reading never makes one).
    template <class T>
    const T* find(const std::string& name, const Labels& labels) const {
        std::lock_guard lock(mutex);
        auto it = entries.find(name);
        if (it == entries.end() || it->second.kind != kind_of<T>()) return nullptr;
        auto s = it->second.series.find(sorted(labels));
        return s == it->second.series.end() ? nullptr : static_cast<const T*>(s->second);
    }
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::add(const std::string& name, const Labels& labels, double delta) {
    if (auto* c = impl_->series<prometheus::Counter>(name, labels)) c->Increment(delta);
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
    if (auto* g = impl_->series<prometheus::Gauge>(name, labels)) g->Set(value);
}

void Metrics::observe(const std::string& name, const Labels& labels, double value, uint64_t times) {
    if (times == 0) return;
    auto* h = impl_->series<prometheus::Histogram>(name, labels);
    if (!h) return;
    if (times == 1) return h->Observe(value);
    // One bucket gets all `times`: the bucket Observe would pick (the first bound >= value).
    const auto& bounds = default_buckets();
    std::vector<double> increments(bounds.size() + 1, 0);
    increments[static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin())] =
        static_cast<double>(times);
    h->ObserveMultiple(increments, value * static_cast<double>(times));
}

void Metrics::observe_each(const std::string& name, const Labels& labels, const std::vector<double>& values) {
    if (values.empty()) return;
    if (auto* h = impl_->series<prometheus::Histogram>(name, labels))
        for (double v : values) h->Observe(v);
}

void Metrics::describe(const std::string& name, const std::string& help) {
    std::lock_guard lock(impl_->mutex);
    impl_->help[name] = help;
}

double Metrics::value(const std::string& name, const Labels& labels) const {
    if (const auto* c = impl_->find<prometheus::Counter>(name, labels)) return c->Value();
    if (const auto* g = impl_->find<prometheus::Gauge>(name, labels)) return g->Value();
    return 0;
}

uint64_t Metrics::count(const std::string& name, const Labels& labels) const {
    const auto* h = impl_->find<prometheus::Histogram>(name, labels);
    return h ? h->Collect().histogram.sample_count : 0;
}

std::string Metrics::render() const {
    return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

}  // namespace spillway::observe
