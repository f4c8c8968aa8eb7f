// ${VAR} interpolation, the shell's familiar forms: ${VAR}, ${VAR:-default}, ${VAR:?message}, $$.
#include "engine/config/config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace spillway::config {

EnvLookup process_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (!v) return std::nullopt;
        return std::string(v);
    };
}

namespace {
bool valid_name(const std::string& n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    return true;
}
}  // namespace

std::string interpolate(const std::string& text, const EnvLookup& getenv, bool* used_env) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c != '$' || i + 1 >= text.size()) {
            out += c;
            continue;
        }
        if (text[i + 1] == '$') {  // $$ is a literal dollar
            out += '$';
            ++i;
            continue;
        }
        if (text[i + 1] != '{') {
            out += c;
            continue;
        }
        const size_t close = text.find('}', i + 2);
        if (close == std::string::npos)
            throw std::invalid_argument("unterminated ${ in \"" + text + "\"");
        const std::string inner = text.substr(i + 2, close - i - 2);
        std::string name = inner, op, arg;
        if (const size_t colon = inner.find(':'); colon != std::string::npos) {
            name = inner.substr(0, colon);
            op = inner.substr(colon, 2);
            arg = inner.substr(std::min(colon + 2, inner.size()));  // "${X:}" has no operator: refused below
            if (op != ":-" && op != ":?")
                throw std::invalid_argument("unsupported form ${" + inner + "} (use ${VAR}, ${VAR:-default} or ${VAR:?message})");
        }
        if (!valid_name(name))
            throw std::invalid_argument("invalid variable name '" + name + "' in ${" + inner + "}" +
                                        (name.find('.') != std::string::npos
                                             ? " (a plugin's own template field, such as a transform's, is written $${" +
                                                   inner + "} in the file)"
                                             : ""));
        const std::optional<std::string> value = getenv(name);
        // As in the shell: the :- and :? forms treat an empty value as unset.
        const bool set = value && (op.empty() || !value->empty());
        if (set) {
            if (used_env) *used_env = true;  // only text the environment supplied is redacted
            out += *value;
        } else if (op == ":-") {
            out += arg;
        } else if (op == ":?") {
            throw std::invalid_argument("${" + name + "} is not set: " + (arg.empty() ? "a value is required" : arg));
        } else {
            throw std::invalid_argument("environment variable " + name + " is not set (write ${" + name +
                                        ":-default} to make it optional)");
        }
        i = close;
    }
    return out;
}

}  // namespace spillway::config
