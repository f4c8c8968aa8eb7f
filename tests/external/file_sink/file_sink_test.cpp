// The example sinks (C++ and C) pass the testkit's sink suite, and their files say what was sent.
#include <spillway/testkit/sink_suite.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

using spillway::testkit::Config;

// A fresh file path per configuration, under one folder per process.
std::string fresh_file() {
    static const auto dir = std::filesystem::temp_directory_path() / ("file-sink-test-" + std::to_string(::getpid()));
    static std::atomic<int> n{0};
    std::filesystem::create_directories(dir);
    return (dir / ("events-" + std::to_string(n++) + ".jsonl")).string();
}

// The event_ids written to `topic`: each line is {"event_id":"...","topic":"...",...}.
std::vector<std::string> delivered(const Config& config, const std::string& topic, size_t) {
    std::vector<std::string> ids;
    std::ifstream in(config.values.at("path"));
    const std::string topic_field = "\"topic\":\"" + topic + "\"";
    for (std::string line; std::getline(in, line);) {
        if (line.find(topic_field) == std::string::npos) continue;
        const size_t start = line.find("\"event_id\":\"") + 12;
        ids.push_back(line.substr(start, line.find('"', start) - start));
    }
    return ids;
}

spillway::testkit::SinkFactory factory(std::string name, std::string plugin) {
    return {std::move(name), std::move(plugin), [] { return Config{{"path", fresh_file()}}; }, delivered};
}

}  // namespace

SPILLWAY_SINK_CONFORMANCE(Cxx, factory("file", FILE_SINK_PLUGIN));
SPILLWAY_SINK_CONFORMANCE(C, factory("cfile", CFILE_SINK_PLUGIN));

TEST(FileSink, WritesOneEscapedJsonLinePerEvent) {
    spillway::testkit::Plugin plugin(FILE_SINK_PLUGIN);
    const std::string path = fresh_file();
    spillway::testkit::SinkInstance sink(plugin, Config{{"path", path}});
    spillway::testkit::sink_suite::Batch batch;
    batch.add("e-1", "orders", "", "{\"quote\":\"\\\"\"}\n");
    std::vector<sw_result> results;
    ASSERT_EQ(spillway::testkit::sink_suite::send(sink, batch, results), SW_OK);
    ASSERT_EQ(results[0].status, SW_OK);
    std::ifstream in(path);
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(line, R"({"event_id":"e-1","topic":"orders","key":null,"payload":"{\"quote\":\"\\\"\"}\u000a"})");
    EXPECT_EQ(sink.host().metric("file_sink_events_total", "result=ok"), 1.0);
}
