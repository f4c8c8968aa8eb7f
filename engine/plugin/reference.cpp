#include "engine/plugin/reference.hpp"

#include <algorithm>
#include <stdexcept>

namespace spillway::plugin {

namespace {

const char* type_text(uint32_t t) {
    switch (t) {
        case SW_OPT_STRING: return "string";
        case SW_OPT_INT: return "int";
        case SW_OPT_DOUBLE: return "double";
        case SW_OPT_BOOL: return "bool";
        case SW_OPT_DURATION: return "duration";
        case SW_OPT_STRING_LIST: return "string list";
        default: return "?";
    }
}

// A table cell: a '|' would end it.
std::string cell(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    for (size_t from = 0;;) {
        const size_t at = s.find(sep, from);
        out.push_back(s.substr(from, at - from));
        if (at == std::string::npos) return out;
        from = at + 1;
    }
}

}  // namespace

std::string option_table_markdown(const std::vector<const Library*>& libraries) {
    // Every option name, in the order the first plugin that has it declares it.
    std::vector<std::string> names;
    for (const Library* lib : libraries)
        for (size_t i = 0; i < lib->descriptor->n_options; ++i) {
            const std::string name = lib->descriptor->options[i].name;
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
    std::string md = "| option | type | default | meaning |\n|---|---|---|---|\n";
    for (const std::string& name : names) {
        std::vector<std::string> owners;
        const sw_option* o = nullptr;
        for (const Library* lib : libraries)
            if (const sw_option* found = lib->option(name)) {
                owners.push_back(lib->name);
                if (!o) o = found;
            }
        std::string option = "`" + name + "`";
        if (owners.size() < libraries.size()) {
            std::string only;
            for (const auto& n : owners) only += (only.empty() ? "" : ", ") + n;
            option += " (" + only + " only)";
        }
        std::string type = type_text(o->type);
        if (o->flags & SW_OPT_REQUIRED) type += ", required";
        if (o->flags & SW_OPT_SECRET) type += ", secret";
        const std::string value = o->default_value ? (*o->default_value ? "`" + std::string(o->default_value) + "`" : "`\"\"`")
                                                   : "—";
        md += "| " + option + " | " + type + " | " + cell(value) + " | " + cell(o->description ? o->description : "") +
              " |\n";
    }
    return md;
}

std::string with_option_tables(const std::string& text, const Registry& registry) {
    static const std::string kOpen = "<!-- options:";
    std::string out = text;
    for (size_t at = out.find(kOpen); at != std::string::npos; at = out.find(kOpen, at + 1)) {
        const size_t ids_end = out.find_first_of(" -", at + kOpen.size());
        const std::string ids = out.substr(at + kOpen.size(), ids_end - at - kOpen.size());
        const size_t body = out.find("-->\n", at);
        const std::string close = "<!-- /options:" + ids + " -->";
        const size_t end = out.find(close, at);
        if (body == std::string::npos || end == std::string::npos || end < body)
            throw std::runtime_error("'" + kOpen + ids + " ...-->' has no '" + close + "' after it");
        std::vector<const Library*> libraries;
        for (const std::string& id : split(ids, ',')) {
            const size_t dot = id.find('.');
            const Library* lib =
                dot == std::string::npos ? nullptr : registry.find(kind_from_name(id.substr(0, dot)), id.substr(dot + 1));
            if (!lib) throw std::runtime_error("no plugin " + id + " on the plugin path (write KIND.NAME, e.g. sink.kafka)");
            libraries.push_back(lib);
        }
        out.replace(body + 4, end - (body + 4), option_table_markdown(libraries));
    }
    return out;
}

}  // namespace spillway::plugin
