// `spillway outbox`: look at and repair the outbox with only the store running — no Kafka, no
// relay, no doorbell — so it works while the brokers are down and beside a running engine.
#include "commands.hpp"

#include "engine/engine.hpp"
#include "engine/http/event_json.hpp"
#include "engine/plugin/store_admin.hpp"
#include "engine/observe/log.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace spillway::cli {

namespace {

std::string age(int64_t ms) {
    if (ms <= 0) return "-";
    if (ms < 1000) return std::to_string(ms) + "ms";
    if (ms < 120000) return std::to_string(ms / 1000) + "s";
    if (ms < 7200000) return std::to_string(ms / 60000) + "m";
    return std::to_string(ms / 3600000) + "h";
}

}  // namespace

int outbox(const OutboxOptions& o) {
    config::LoadOptions load;
    load.environment = o.config.environment;
    std::unique_ptr<Prepared> prepared;
    try {
        prepared = prepare(o.config.config, load);
    } catch (const config::ConfigError& e) {
        std::cerr << e.what() << "\n";
        return kInvalidConfig;
    }
    const auto& cfg = prepared->config;
    std::vector<std::string> pipelines = o.pipelines;
    if (pipelines.empty())
        for (const auto& [name, p] : cfg.pipelines) pipelines.push_back(name);
    for (const auto& name : pipelines) {
        if (!cfg.pipelines.count(name)) {
            std::cerr << "--pipeline " << name << ": " << o.config.config << " has no such pipeline (it has:";
            for (const auto& [known, p] : cfg.pipelines) std::cerr << " " << known;
            std::cerr << ")\n";
            return kUsage;
        }
    }
    if (o.action == "purge" && o.event_ids.empty() && !o.all) {
        std::cerr << "outbox purge deletes dead letters for good: name them with --event-id, or pass --all\n";
        return kUsage;
    }
    if (!o.event_ids.empty() && o.action != "replay" && o.action != "purge") {
        std::cerr << "--event-id applies to replay and purge only\n";
        return kUsage;
    }
    observe::setup_logging(cfg.engine.log_level, cfg.engine.log_format);
    auto log = observe::logger();

    // One instance per store component, shared by the pipelines that name it (as in the engine).
    observe::Metrics metrics;
    std::map<std::string, std::unique_ptr<plugin::Instance>> stores;  // by component id
    std::map<std::string, plugin::Instance*> store_of;                // by pipeline
    try {
        for (const auto& name : pipelines) {
            const std::string id = "store." + cfg.pipelines.at(name).uses.at("store");
            auto& inst = stores[id];
            if (!inst) {
                inst = std::make_unique<plugin::Instance>(prepared->bindings.at(id), &metrics);
                inst->start();
            }
            store_of[name] = inst.get();
        }

        if (o.action == "migrate") {
            // What the store did, at its start (auto_migrate) and now; "up to date" only when nothing.
            for (const auto& [id, inst] : stores) {
                const auto steps = plugin::StoreAdmin(*inst).migrate();
                if (steps.empty()) std::cout << id << ": schema up to date\n";
                for (const auto& step : steps) std::cout << id << ": " << step << "\n";
            }
            return kOk;
        }
        if (o.action == "status") {
            nlohmann::json all = nlohmann::json::array();
            if (!o.json) std::printf("%-20s %-16s %9s %7s %7s %8s\n", "PIPELINE", "STORE", "PENDING", "LEASED", "DEAD", "OLDEST");
            for (const auto& name : pipelines) {
                const plugin::StoreCounts c = plugin::StoreAdmin(*store_of[name]).counts(name);
                if (o.json) {
                    all.push_back({{"pipeline", name}, {"store", store_of[name]->id()}, {"pending", c.pending},
                                   {"leased", c.leased}, {"dead", c.dead}, {"oldest_pending_age_ms", c.oldest_pending_age_ms}});
                } else {
                    std::printf("%-20s %-16s %9lld %7lld %7lld %8s\n", name.c_str(), store_of[name]->id().c_str(),
                                static_cast<long long>(c.pending), static_cast<long long>(c.leased),
                                static_cast<long long>(c.dead), age(c.oldest_pending_age_ms).c_str());
                }
            }
            if (o.json) std::cout << all.dump(2) << "\n";
            // Rows no pipeline relays are counted by none of the lines above: say so. A store's
            // rows are relayed by every configured pipeline using it, not only those listed.
            for (const auto& [id, inst] : stores) {
                std::vector<std::string> users;
                for (const auto& [name, p] : cfg.pipelines)
                    if ("store." + p.uses.at("store") == id) users.push_back(name);
                plugin::StoreAdmin admin(*inst);
                const std::string warning = plugin::unrelayed_warning(id, plugin::unrelayed(admin, users));
                if (!warning.empty()) std::cerr << warning << "\n";
            }
            return kOk;
        }
        if (o.action == "dead") {
            // One JSON object per line, the same shape the admin API lists.
            for (const auto& name : pipelines) {
                plugin::StoreAdmin admin(*store_of[name]);
                int64_t after = 0;
                size_t printed = 0;
                for (;;) {
                    const size_t page = o.limit ? std::min<size_t>(500, o.limit - printed) : 500;
                    if (page == 0) break;
                    const auto dead = admin.list_dead(name, after, page);
                    for (const auto& d : dead) {
                        auto j = nlohmann::json::parse(http::dead_letter_json(d));
                        j["pipeline"] = name;
                        std::cout << j.dump() << "\n";
                    }
                    printed += dead.size();
                    if (dead.size() < page) break;
                    after = dead.back().row_id;
                }
            }
            return kOk;
        }
        if (o.action == "replay" || o.action == "purge") {
            for (const auto& name : pipelines) {
                plugin::StoreAdmin admin(*store_of[name]);
                const int64_t n = o.action == "replay" ? admin.replay(name, o.event_ids) : admin.purge(name, o.event_ids);
                std::cout << name << ": " << (o.action == "replay" ? "replayed " : "purged ") << n << " dead letter(s)\n";
            }
            // A running engine's relay finds replayed rows at its next poll; the admin API's
            // replay route also rings the doorbell.
            return kOk;
        }
    } catch (const plugin::PluginError& e) {
        log->error("{}", e.what());
        return e.status() == SW_INVALID_CONFIG ? kInvalidConfig : kRuntimeFailure;
    }
    std::cerr << "unknown outbox action '" << o.action << "' (status, dead, replay, purge, migrate)\n";
    return kUsage;
}

}  // namespace spillway::cli
