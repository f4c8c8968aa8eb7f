// The option tables of the operator's reference (configs/README.md, plugins/*/README.md), made from
// the plugins' descriptors: a plugin's option table (spillway/options.hpp) is the only place an
// option's type, default and meaning are written; the READMEs hold what it makes of them.
#pragma once

#include "engine/plugin/loader.hpp"

#include <string>
#include <vector>

namespace spillway::plugin {

// "| option | type | default | meaning |" and a row per option. Several plugins (two stores) share
// one table: an option of some of them only says so ("`url` (postgres only)").
std::string option_table_markdown(const std::vector<const Library*>& libraries);

// `text` with every block between "<!-- options:KIND.NAME[,KIND.NAME] ... -->" and
// "<!-- /options:KIND.NAME[,...] -->" made anew from the plugins in `registry`. Throws
// std::runtime_error naming a plugin the registry does not have, or an unclosed block.
std::string with_option_tables(const std::string& text, const Registry& registry);

}  // namespace spillway::plugin
