// Fake plugins for engine unit tests, one per kind, built with the SDK and loaded through the same
// C ABI as real ones. They hold no state worth testing; their option tables exercise the
// config validator, and their behaviour is trivially predictable.
#include <spillway/sdk.hpp>

#include <condition_variable>
#include <mutex>

namespace spillway::fakes {

using sdk::Host;

#if defined(FAKE_SINK)
class FakeSink final : public sdk::Sink {
public:
    explicit FakeSink(Host h) : Sink(h), brokers_(h.string("brokers")) {}
    // Pass-through keys named bad.* are refused, to test that the engine maps a plugin's
    // config_error to the key's file:line:col.
    static void validate(Host h) {
        for (const auto& [key, value] : h.entries())
            if (key.rfind("bad.", 0) == 0) throw sdk::ConfigError(key, "the fake sink refuses '" + value + "'");
        (void)h.string("brokers");
    }
    void send(std::span<const sw_event>, std::span<sw_result> out, int64_t) override {
        for (auto& r : out) sdk::set_result(r, SW_OK);
    }

private:
    std::string brokers_;
};
static const sw_option kOptions[] = {
    {"brokers", SW_OPT_STRING, SW_OPT_REQUIRED, nullptr, "where to send"},
    {"linger", SW_OPT_DURATION, 0, "5ms", "how long to wait"},
    {"retries", SW_OPT_INT, 0, "3", "how often to retry"},
    {"ratio", SW_OPT_DOUBLE, 0, "0.5", "a number"},
    {"compress", SW_OPT_BOOL, 0, "false", "a flag"},
    {"password", SW_OPT_STRING, SW_OPT_SECRET, nullptr, "a secret"},
    {"tags", SW_OPT_STRING_LIST, 0, nullptr, "a list"},
};
SW_EXPORT_SINK(FakeSink, "fake", "1.0.0", "fake sink for engine tests", kOptions, SW_PLUGIN_OPEN_OPTIONS | SW_PLUGIN_THREAD_SAFE)

#elif defined(FAKE_STORE)
class FakeStore final : public sdk::Store {
public:
    using Store::Store;
    void append(std::span<const sw_event>, std::span<sw_result> out) override {
        for (auto& r : out) sdk::set_result(r, SW_OK);
    }
    std::unique_ptr<sdk::Batch> claim(std::string_view, size_t, int64_t) override { return std::make_unique<sdk::Batch>(); }
    void complete(std::span<const int64_t>, std::span<const sw_result>) override {}
    void release_leases(std::span<const int64_t>) override {}
    sdk::Stats stats(std::string_view) override { return {}; }
};
#if defined(FAKE_SERVER_STORE)
// A second store plugin with other options, to test overlays that swap plugins.
static const sw_option kOptions[] = {
    {"url", SW_OPT_STRING, SW_OPT_REQUIRED | SW_OPT_SECRET, nullptr, "the database url"},
};
SW_EXPORT_STORE(FakeStore, "fake-server", "1.0.0", "fake server store for engine tests", kOptions, SW_PLUGIN_THREAD_SAFE)
#else
static const sw_option kOptions[] = {
    {"path", SW_OPT_STRING, SW_OPT_REQUIRED, nullptr, "the database file"},
    {"max_pending", SW_OPT_INT, 0, "0", "backlog bound"},
    {"url", SW_OPT_STRING, SW_OPT_SECRET, nullptr, "a secret url"},
    {"labels.*", SW_OPT_STRING, 0, nullptr, "a family of keys (labels.<name>), each a string"},
};
SW_EXPORT_STORE(FakeStore, "fake", "1.0.0", "fake store for engine tests", kOptions, SW_PLUGIN_THREAD_SAFE)
#endif

#elif defined(FAKE_NOTIFIER)
class FakeNotifier final : public sdk::Notifier {
public:
    using Notifier::Notifier;
    void notify(std::string_view) override {}
    bool wait(std::string_view, int64_t) override { return false; }
    void interrupt() override {}
};
static const sw_option kOptions[] = {{"channel", SW_OPT_STRING, 0, "wake", "a channel"}};
SW_EXPORT_NOTIFIER(FakeNotifier, "fake", "1.0.0", "fake notifier for engine tests", kOptions, SW_PLUGIN_THREAD_SAFE)

#elif defined(FAKE_SCHEDULER)
class FakeScheduler final : public sdk::Scheduler {
public:
    explicit FakeScheduler(Host h) : Scheduler(h), interval_(h.duration_ms("interval")) {}
    int64_t next_delay(const sw_round&) override { return interval_; }

private:
    int64_t interval_;
};
static const sw_option kOptions[] = {{"interval", SW_OPT_DURATION, 0, "100ms", "fixed poll interval"}};
SW_EXPORT_SCHEDULER(FakeScheduler, "fake", "1.0.0", "fake scheduler for engine tests", kOptions, 0)

#elif defined(FAKE_TRANSFORM)
class FakeTransform final : public sdk::Transform {
public:
    explicit FakeTransform(Host h) : Transform(h), topic_(h.opt_string("topic").value_or("")) {}
    void apply(sdk::Edit& e) override {
        if (!topic_.empty()) e.set_topic(topic_);
    }

private:
    std::string topic_;
};
static const sw_option kOptions[] = {{"topic", SW_OPT_STRING, 0, nullptr, "the topic every event gets"}};
SW_EXPORT_TRANSFORM(FakeTransform, "fake", "1.0.0", "fake transform for engine tests", kOptions, SW_PLUGIN_THREAD_SAFE)
#endif

}  // namespace spillway::fakes
