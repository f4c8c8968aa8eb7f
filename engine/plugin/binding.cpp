#include "engine/plugin/binding.hpp"

#include <spillway/detail/duration.hpp>
#include <spillway/detail/option_type.hpp>

#include <cmath>
#include <sstream>

namespace spillway::plugin {

config::Location Binding::where(const std::string& key) const {
    if (auto it = options.find(key); it != options.end() && !it->second.defaulted) return it->second.where;
    return spec->where;
}

namespace {

const char* type_label(uint32_t t) { return spillway::detail::option_type_label(t); }

const char* held(const config::Value& v) {
    switch (v.data.index()) {
        case 0: return "a string";
        case 1: return "an integer";
        case 2: return "a number";
        case 3: return "a boolean";
        default: return "a list";
    }
}

// Types `raw` per the option; values that arrived as strings through ${VAR} may be converted.
bool convert(const config::Value& raw, uint32_t type, Option& out, std::string& why) {
    out.type = type;
    out.where = raw.where;
    const std::string* s = std::get_if<std::string>(&raw.data);
    const bool coercible = s && (raw.from_env || raw.interpolated);
    switch (type) {
        case SW_OPT_STRING:
            if (!s) break;
            out.text = *s;
            return true;
        case SW_OPT_INT:
            if (auto i = std::get_if<int64_t>(&raw.data)) {
                out.integer = *i;
                out.text = std::to_string(*i);
                return true;
            }
            if (coercible) {
                char* end = nullptr;
                out.integer = std::strtoll(s->c_str(), &end, 10);
                if (!s->empty() && !*end) {
                    out.text = *s;
                    return true;
                }
            }
            break;
        case SW_OPT_DOUBLE:
            if (auto d = std::get_if<double>(&raw.data)) out.real = *d;
            else if (auto i = std::get_if<int64_t>(&raw.data)) out.real = static_cast<double>(*i);
            else if (coercible) {
                char* end = nullptr;
                out.real = std::strtod(s->c_str(), &end);
                if (s->empty() || *end) break;
            } else break;
            out.text = raw.render();
            if (coercible) out.text = *s;
            return true;
        case SW_OPT_BOOL:
            if (auto b = std::get_if<bool>(&raw.data)) {
                out.boolean = *b;
                out.text = *b ? "true" : "false";
                return true;
            }
            if (coercible && (*s == "true" || *s == "false")) {
                out.boolean = *s == "true";
                out.text = *s;
                return true;
            }
            break;
        case SW_OPT_DURATION:
            if (auto i = std::get_if<int64_t>(&raw.data); i && *i >= 0) {
                out.integer = *i;
                out.text = std::to_string(*i) + "ms";
                return true;
            }
            if (s) {
                if (auto ms = spillway::detail::parse_duration_ms(*s)) {
                    out.integer = *ms;
                    out.text = *s;
                    return true;
                }
                why = "bad duration \"" + *s + "\"; write a number with ms, s, m or h, e.g. \"250ms\", \"2s\"";
                return false;
            }
            break;
        case SW_OPT_STRING_LIST:
            if (auto l = std::get_if<config::List>(&raw.data)) {
                out.list = *l;
                out.text = raw.render();
                return true;
            }
            break;
    }
    why = std::string("expected ") + type_label(type) + ", got " + held(raw);
    return false;
}

// Parses a default (written as TOML would spell it, without quotes for strings).
Option from_default(const sw_option& o) {
    Option opt;
    opt.type = o.type;
    opt.defaulted = true;
    opt.secret = o.flags & SW_OPT_SECRET;
    const std::string d = o.default_value;
    opt.text = d;
    switch (o.type) {
        case SW_OPT_INT: opt.integer = std::strtoll(d.c_str(), nullptr, 10); break;
        case SW_OPT_DOUBLE: opt.real = std::strtod(d.c_str(), nullptr); break;
        case SW_OPT_BOOL: opt.boolean = d == "true"; break;
        case SW_OPT_DURATION: opt.integer = spillway::detail::parse_duration_ms(d).value_or(0); break;
        case SW_OPT_STRING_LIST: {
            // "a,b,c": the plugin's own default list, comma-separated.
            std::stringstream ss(d);
            for (std::string item; std::getline(ss, item, ',');)
                if (!item.empty()) opt.list.push_back(item);
            break;
        }
        default: break;
    }
    return opt;
}

}  // namespace

std::vector<config::Diagnostic> bind_all(const config::Config& cfg, const Registry& registry,
                                         std::map<std::string, Binding>& out) {
    std::vector<config::Diagnostic> diags;
    for (const auto& [id, comp] : cfg.components) {
        const uint32_t kind = kind_from_name(comp.kind);
        const Library* lib = registry.find(kind, comp.plugin);
        if (!lib) {
            if (comp.plugin.empty()) continue;  // already reported by the loader
            std::string known;
            for (const auto& n : registry.names(kind)) known += (known.empty() ? "" : ", ") + n;
            std::string msg = "no " + comp.kind + " plugin named '" + comp.plugin + "' on the plugin path";
            msg += known.empty() ? " (none of that kind was found" : " (found: " + known;
            for (const auto& r : registry.refused()) msg += "; refused " + r.str();
            msg += ")";
            diags.push_back({comp.plugin_where, id + ".plugin", msg});
            continue;
        }
        Binding b;
        b.spec = &comp;
        b.library = lib;
        b.environment = cfg.environment;
        for (const auto& [key, raw] : comp.options) {
            const sw_option* opt = lib->option(key);
            Option typed;
            if (!opt) {
                if (!lib->open_options()) {
                    std::string known;
                    for (size_t i = 0; i < lib->descriptor->n_options; ++i)
                        known += (known.empty() ? "" : ", ") + std::string(lib->descriptor->options[i].name);
                    diags.push_back({raw.where, id + "." + key,
                                     "unknown option for " + comp.kind + " plugin '" + lib->name + "'" +
                                         (known.empty() ? " (it takes none)" : " (it takes: " + known + ")")});
                    continue;
                }
                // Pass-through keys reach the plugin as text; it validates them itself.
                typed.type = SW_OPT_STRING;
                typed.declared = false;
                typed.where = raw.where;
                typed.text = raw.is_string() ? std::get<std::string>(raw.data) : raw.render();
                if (auto* l = std::get_if<config::List>(&raw.data)) typed.list = *l;
                b.options[key] = std::move(typed);
                continue;
            }
            std::string why;
            if (!convert(raw, opt->type, typed, why)) {
                diags.push_back({raw.where, id + "." + key, why});
                continue;
            }
            typed.secret = opt->flags & SW_OPT_SECRET;
            b.options[key] = std::move(typed);
        }
        for (size_t i = 0; i < lib->descriptor->n_options; ++i) {
            const sw_option& o = lib->descriptor->options[i];
            if (b.options.count(o.name) || comp.options.count(o.name)) continue;
            if (o.flags & SW_OPT_REQUIRED) {
                diags.push_back({comp.where, id + "." + o.name,
                                 std::string("missing required option (") + type_label(o.type) +
                                     (o.description ? "): " + std::string(o.description) : ")")});
            } else if (o.default_value) {
                b.options[o.name] = from_default(o);
            }
        }
        out[id] = std::move(b);
    }
    return diags;
}

bool is_secret(const Registry& registry, const config::Component& component, const std::string& key) {
    const Library* lib = registry.find(kind_from_name(component.kind), component.plugin);
    if (!lib) return false;
    const sw_option* o = lib->option(key);
    return o && (o->flags & SW_OPT_SECRET);
}

}  // namespace spillway::plugin
