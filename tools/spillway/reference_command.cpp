// `spillway reference [--write FILE]...`: the operator's reference tables, made from what the code
// declares so they cannot drift: configs/README.md's [engine] and [pipeline] keys (the loader's key
// tables), every plugin option table (the plugins' descriptors) and docs/metrics.md's metric
// families (engine/observe/catalogue.cpp), between their markers.
#include "commands.hpp"

#include "engine/config/config.hpp"
#include "engine/engine.hpp"
#include "engine/observe/catalogue.hpp"
#include "engine/plugin/reference.hpp"

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
    plugin::Registry registry;
    registry.scan(options.plugin_path.empty() ? plugin_search_path(nullptr, config::process_environment())
                                              : options.plugin_path);
    int status = kOk;
    for (const std::string& file : options.write) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::cerr << "spillway reference: cannot read " << file << "\n";
            status = kRuntimeFailure;
            continue;
        }
        std::stringstream text;
        text << in.rdbuf();
        std::string made = text.str();
        try {
            if (made.find("<!-- keys:") != std::string::npos) made = config::with_key_tables(made);
            if (made.find("<!-- metrics:") != std::string::npos) made = observe::with_metric_table(made);
            made = plugin::with_option_tables(made, registry);
        } catch (const std::exception& e) {
            std::cerr << "spillway reference: " << file << ": " << e.what() << "\n";
            status = kInvalidConfig;
            continue;
        }
        if (made == text.str()) {
            std::cout << file << ": up to date\n";
            continue;
        }
        std::ofstream(file, std::ios::binary | std::ios::trunc) << made;
        std::cout << file << ": tables written\n";
    }
    return status;
}

}  // namespace spillway::cli
