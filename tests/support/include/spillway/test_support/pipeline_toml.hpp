// PipelineToml: the pipeline file the tests and spillway-bench hand to the engine, built from
// parts instead of pasted TOML text, so that every caller writes the same shape and only says what
// differs (a log level, an HTTP listener, a store, extra keys).
//
//   PipelineToml toml(SPILLWAY_PLUGIN_DIR);
//   toml.engine().set("log_level", "warn").set("http_listen", "127.0.0.1:" + std::to_string(port));
//   toml.kafka_sink(kafka.bootstraps()).set_integer("message.timeout.ms", 1000);
//   toml.sqlite_store(dir.path() + "/outbox.db");
//   toml.notifier("inproc");
//   toml.adaptive_scheduler();
//   toml.pipeline("orders").set("topic", "orders.events").add_lines(extra);
//   toml.write(dir.path() + "/pipeline.toml");
//
// The text: each table's keys in the order they were set, then its added lines, tables in the
// order they were made with a blank line between them.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace spillway::test_support {

// One [table]. Keys are written bare when TOML allows it and quoted otherwise
// ("bootstrap.servers"); string values are quoted and escaped.
class TomlTable {
 public:
  explicit TomlTable(std::string name);

  TomlTable& set(const std::string& key, const std::string& value);  // a string
  TomlTable& set_integer(const std::string& key, int64_t value);
  TomlTable& set_bool(const std::string& key, bool value);
  TomlTable& set_strings(const std::string& key, const std::vector<std::string>& values);  // an array
  // TOML lines as they are (e.g. a test's extra keys); a missing final newline is added. Empty: nothing.
  TomlTable& add_lines(const std::string& toml);

  const std::string& name() const { return name_; }
  std::string text() const;  // "[name]\n" and its lines

 private:
  TomlTable& set_literal(const std::string& key, const std::string& literal);

  std::string name_;
  std::string body_;
};

// The tables of a pipeline file with the names every test config uses: [engine], one Kafka sink
// [sink.kafka], one store [store.outbox], one doorbell [notifier.bell], the adaptive scheduler
// [scheduler.poll], and pipelines that name all four.
class PipelineToml {
 public:
  // Starts [engine] with plugin_path = [plugin_dir].
  explicit PipelineToml(const std::string& plugin_dir);

  TomlTable& engine() { return tables_.front(); }
  TomlTable& kafka_sink(const std::string& bootstraps);  // plugin "kafka", "bootstrap.servers"
  TomlTable& sqlite_store(const std::string& path);
  TomlTable& postgres_store(const std::string& url);  // a libpq conninfo
  TomlTable& notifier(const std::string& plugin);     // inproc | redis | pgnotify
  TomlTable& adaptive_scheduler();
  // [pipeline.<name>] with sink, store, notifier and scheduler set to the tables above.
  TomlTable& pipeline(const std::string& name);

  std::string text() const;
  void write(const std::string& path) const;  // throws std::runtime_error when the file cannot be written

 private:
  TomlTable& add(std::string name);

  std::deque<TomlTable> tables_;  // a deque: the references handed out stay valid as tables are added
};

// `value` as a TOML basic string: quoted, with quotes, backslashes and control characters escaped.
std::string toml_string(const std::string& value);

}  // namespace spillway::test_support
