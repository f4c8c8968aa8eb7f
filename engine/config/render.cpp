// Prints the effective configuration as TOML, with values from the environment and secret
// options redacted, so `spillway validate` output can be pasted into a ticket.
#include "engine/config/config.hpp"

#include <cctype>
#include <sstream>

namespace spillway::config {

namespace {

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string bare_or_quoted(const std::string& key) {
    for (char c : key)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return quote(key);
    return key;
}

const char* mode_name(Mode m) { return m == Mode::DirectFirst ? "direct-first" : "outbox-first"; }

std::string ms(int64_t v) { return quote(std::to_string(v) + "ms"); }

}  // namespace

bool name_says_secret(const std::string& option_name) {
    std::vector<std::string> words(1);
    for (char c : option_name) {
        if (c == '.' || c == '_' || c == '-') {
            if (!words.back().empty()) words.emplace_back();
        } else {
            words.back() += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    if (words.back().empty()) words.pop_back();
    auto any_of = [](const std::string& word, std::initializer_list<const char*> list) {
        for (const char* w : list)
            if (word == w) return true;
        return false;
    };
    for (size_t i = 0; i < words.size(); ++i) {
        if (any_of(words[i], {"password", "passwd", "passphrase", "secret", "token", "credentials", "credential",
                              "apikey", "jaas"}))
            return true;
        if (words[i] != "key") continue;
        if (i > 0 && any_of(words[i - 1], {"private", "api", "ssl", "signing", "encryption"})) return true;
        if (i + 1 < words.size() && any_of(words[i + 1], {"pem", "der", "data", "material"})) return true;
    }
    return words.size() >= 2 && words[words.size() - 2] == "oauthbearer" && words.back() == "config";
}

std::string Value::render() const {
    struct Visitor {
        std::string operator()(const std::string& s) const { return quote(s); }
        std::string operator()(int64_t i) const { return std::to_string(i); }
        std::string operator()(double d) const {
            std::ostringstream os;
            os << d;
            std::string s = os.str();
            if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
            return s;
        }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(const List& l) const {
            std::string s = "[";
            for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + quote(l[i]);
            return s + "]";
        }
    };
    return std::visit(Visitor{}, data);
}

std::string render_toml(const Config& c, const SecretPredicate& is_secret, const DefaultsFn& defaults) {
    std::ostringstream o;
    o << "# effective configuration of " << c.file << ", environment \"" << c.environment << "\" (from "
      << c.environment_source << ")\n";
    o << "# values from the environment show as \"<from environment>\", secrets as \"<secret>\"\n\n";
    o << "[engine]\n";
    o << "plugin_path = "
      << (c.engine.plugin_path_from_env ? "[\"<from environment>\"]" : Value{c.engine.plugin_path, {}, false}.render())
      << "\n";
    o << "log_level = " << quote(c.engine.log_level) << "\n";
    o << "log_format = " << quote(c.engine.log_format) << "\n";
    if (!c.engine.http_listen.empty()) o << "http_listen = " << quote(c.engine.http_listen) << "\n";
    if (!c.engine.http_token.empty()) o << "http_token = \"<secret>\"\n";
    // The HTTP limits an operator changed; the defaults are in configs/README.md.
    const HttpLimits http_defaults;
    for (size_t i = 0; i < kHttpLimitKeyCount; ++i) {
        const HttpLimitKey& k = kHttpLimitKeys[i];
        if (k.kind == HttpLimitKey::Flag) {
            if (c.engine.http.gzip != http_defaults.gzip) o << k.key << " = " << (c.engine.http.gzip ? "true" : "false") << "\n";
        } else if (c.engine.http.*k.value != http_defaults.*k.value) {
            o << k.key << " = ";
            if (k.kind == HttpLimitKey::Duration) o << quote(std::to_string(c.engine.http.*k.value) + "ms");
            else o << c.engine.http.*k.value;
            o << "\n";
        }
    }
    for (const auto& [id, comp] : c.components) {
        o << "\n[" << comp.kind << "." << comp.name << "]  # " << comp.where.str() << "\n";
        o << "plugin = " << quote(comp.plugin) << "\n";
        for (const auto& [key, value] : comp.options) {
            o << bare_or_quoted(key) << " = ";
            if (name_says_secret(key) || (is_secret && is_secret(comp, key))) o << "\"<secret>\"";
            else if (value.from_env) o << "\"<from environment>\"";
            else o << value.render();
            o << "\n";
        }
        if (defaults)
            for (const auto& [key, value] : defaults(comp))
                o << bare_or_quoted(key) << " = " << (name_says_secret(key) ? "\"<secret>\"" : value) << "  # default\n";
    }
    for (const auto& [name, p] : c.pipelines) {
        o << "\n[pipeline." << name << "]  # " << p.where.str() << "\n";
        for (const char* kind : kKinds)
            if (auto it = p.uses.find(kind); it != p.uses.end()) o << kind << " = " << quote(it->second) << "\n";
        if (!p.transforms.empty()) {
            o << "transforms = [";
            for (size_t i = 0; i < p.transforms.size(); ++i) o << (i ? ", " : "") << quote(p.transforms[i]);
            o << "]\n";
        }
        o << "mode = " << quote(mode_name(p.mode)) << "\n";
        if (!p.topic.empty()) o << "topic = " << quote(p.topic) << "\n";
        if (!p.topics.empty()) {
            o << "topics = [";
            for (size_t i = 0; i < p.topics.size(); ++i) o << (i ? ", " : "") << quote(p.topics[i]);
            o << "]" << (p.topics_default ? "  # default: the HTTP ingress is public" : "") << "\n";
        }
        o << "direct_timeout = " << ms(p.direct_timeout_ms) << "\n";
        o << "batch_size = " << p.batch_size << "\n";
        o << "drain_batch_size = " << p.drain_batch_size << "\n";
        o << "claim_ahead = " << (p.claim_ahead ? "true" : "false") << "\n";
        o << "lease = " << ms(p.lease_ms) << "\n";
        o << "circuit_threshold = " << p.circuit_threshold << "\n";
        o << "shutdown_timeout = " << ms(p.shutdown_timeout_ms) << "\n";
        o << "on_reject = " << quote(p.dead_letter_rejects ? "dead-letter" : "refuse") << "\n";
        o << "metrics_event_types = " << p.metrics_event_types << "\n";
    }
    return o.str();
}

}  // namespace spillway::config
