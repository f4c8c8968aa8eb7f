// `spillway reference [--write FILE]`: the [engine] and [pipeline] key tables of configs/README.md,
// made from the loader's key tables (engine/config/load.cpp), so the reference cannot drift.
#include "commands.hpp"

#include "engine/config/config.hpp"

#include <fstream>
#include <iostream>
#include <sstream>

namespace spillway::cli {

int reference(const ReferenceOptions& options) {
    if (options.write.empty()) {
        std::cout << "## [engine]\n\n" << config::key_table_markdown(config::engine_key_rows())
                  << "\n## [pipeline.<name>]\n\n" << config::key_table_markdown(config::pipeline_key_rows());
        return kOk;
    }
    std::ifstream in(options.write, std::ios::binary);
    if (!in) {
        std::cerr << "spillway reference: cannot read " << options.write << "\n";
        return kRuntimeFailure;
    }
    std::stringstream text;
    text << in.rdbuf();
    std::string made;
    try {
        made = config::with_key_tables(text.str());
    } catch (const std::exception& e) {
        std::cerr << "spillway reference: " << options.write << ": " << e.what() << "\n";
        return kInvalidConfig;
    }
    if (made == text.str()) {
        std::cout << options.write << ": up to date\n";
        return kOk;
    }
    std::ofstream(options.write, std::ios::binary | std::ios::trunc) << made;
    std::cout << options.write << ": key tables written\n";
    return kOk;
}

}  // namespace spillway::cli
