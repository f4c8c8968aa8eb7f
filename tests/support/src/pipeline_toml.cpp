#include "spillway/test_support/pipeline_toml.hpp"

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace spillway::test_support {
namespace {

bool bare_key(const std::string& key) {
  if (key.empty()) return false;
  for (const char c : key)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

std::string toml_key(const std::string& key) { return bare_key(key) ? key : toml_string(key); }

}  // namespace

std::string toml_string(const std::string& value) {
  std::string out = "\"";
  for (const char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

TomlTable::TomlTable(std::string name) : name_(std::move(name)) {}

TomlTable& TomlTable::set_literal(const std::string& key, const std::string& literal) {
  body_ += toml_key(key) + " = " + literal + "\n";
  return *this;
}

TomlTable& TomlTable::set(const std::string& key, const std::string& value) { return set_literal(key, toml_string(value)); }

TomlTable& TomlTable::set_integer(const std::string& key, int64_t value) { return set_literal(key, std::to_string(value)); }

TomlTable& TomlTable::set_bool(const std::string& key, bool value) { return set_literal(key, value ? "true" : "false"); }

TomlTable& TomlTable::set_strings(const std::string& key, const std::vector<std::string>& values) {
  std::string literal = "[";
  for (size_t i = 0; i < values.size(); ++i) literal += (i ? ", " : "") + toml_string(values[i]);
  return set_literal(key, literal + "]");
}

TomlTable& TomlTable::add_lines(const std::string& toml) {
  body_ += toml;
  if (!toml.empty() && toml.back() != '\n') body_ += '\n';
  return *this;
}

std::string TomlTable::text() const { return "[" + name_ + "]\n" + body_; }

PipelineToml::PipelineToml(const std::string& plugin_dir) { add("engine").set_strings("plugin_path", {plugin_dir}); }

TomlTable& PipelineToml::add(std::string name) { return tables_.emplace_back(std::move(name)); }

TomlTable& PipelineToml::kafka_sink(const std::string& bootstraps) {
  return add("sink.kafka").set("plugin", "kafka").set("bootstrap.servers", bootstraps);
}

TomlTable& PipelineToml::sqlite_store(const std::string& path) {
  return add("store.outbox").set("plugin", "sqlite").set("path", path);
}

TomlTable& PipelineToml::postgres_store(const std::string& url) {
  return add("store.outbox").set("plugin", "postgres").set("url", url);
}

TomlTable& PipelineToml::notifier(const std::string& plugin) { return add("notifier.bell").set("plugin", plugin); }

TomlTable& PipelineToml::adaptive_scheduler() { return add("scheduler.poll").set("plugin", "adaptive"); }

TomlTable& PipelineToml::pipeline(const std::string& name) {
  return add("pipeline." + name).set("sink", "kafka").set("store", "outbox").set("notifier", "bell").set("scheduler", "poll");
}

std::string PipelineToml::text() const {
  std::string out;
  for (const auto& table : tables_) out += (out.empty() ? "" : "\n") + table.text();
  return out;
}

void PipelineToml::write(const std::string& path) const {
  std::ofstream file(path, std::ios::trunc);
  file << text();
  file.close();
  if (!file) throw std::runtime_error("PipelineToml: cannot write " + path);
}

}  // namespace spillway::test_support
