// `spillway validate`: every check `run` makes before starting anything, and the effective config.
#include "commands.hpp"

#include "engine/engine.hpp"

#include <iostream>

namespace spillway::cli {

int validate(const ConfigOptions& options) {
    config::LoadOptions load;
    load.environment = options.environment;
    try {
        auto prepared = prepare(options.config, load);
        for (const auto& w : prepared->config.warnings) std::cerr << "warning: " << w.str() << "\n";
        std::cout << prepared->render();
        std::cerr << options.config << ": OK (" << prepared->bindings.size() << " components, "
                  << prepared->config.pipelines.size() << " pipelines, environment "
                  << prepared->config.environment << ")\n";
        return kOk;
    } catch (const config::ConfigError& e) {
        std::cerr << e.what() << "\n";
        const size_t n = e.diagnostics().size();
        std::cerr << options.config << ": " << n << (n == 1 ? " error" : " errors") << "\n";
        return kInvalidConfig;
    }
}

}  // namespace spillway::cli
