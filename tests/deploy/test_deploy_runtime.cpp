// The Deployment of deploy/kubernetes run for real, as far as one machine can: its replicas are
// `spillway run` processes with the container's command line, the environment the kubelet gives
// them (the pod's name as SPILLWAY_MEMBER_ID, the Secret's values) and the ConfigMap's pipeline
// file, each as an unprivileged user that can write nowhere but /tmp (the pod: runAsNonRoot, a
// read-only root filesystem). Only what points outside this machine is replaced: the database URL
// by a throwaway PostgreSQL, the brokers by a mock Kafka cluster, the listener's port by a free one
// per replica (they share one host here). The manifests are read by check_deploy.py (`facts`), the
// one YAML reader of these tests.
#include <spillway/test_support/child_process.hpp>
#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace spillway::deploy_test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;
namespace ts = spillway::test_support;

json deployment_facts() {
    const ts::CommandResult r = ts::run_command({SPILLWAY_PYTHON3, SPILLWAY_CHECK_DEPLOY, "facts", "--deploy",
                                                 SPILLWAY_DEPLOY_DIR "/kubernetes", "--binary", SPILLWAY_BIN});
    if (r.code != 0) throw std::runtime_error("check_deploy.py facts exited " + std::to_string(r.code) + ":\n" + r.out + r.err);
    return json::parse(r.out);
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// One pod of the Deployment: its own config directory, port and name.
struct Replica {
    std::string pod_name;
    int port = 0;
    std::unique_ptr<ts::TempDir> dir;
    std::string log_path;
    ts::ChildProcess process;

    httplib::Result get(const std::string& path) {
        httplib::Client c("127.0.0.1", port);
        c.set_connection_timeout(2s);
        c.set_read_timeout(5s);
        return c.Get(path);
    }
};

TEST(DeployKubernetes, TheDeploymentsReplicasShareTheOutboxServeTheirProbesAndStopWithinTheGracePeriod) {
    const json facts = deployment_facts();
    const std::vector<std::string> argv = facts["argv"];
    const size_t config_index = facts["config_index"];
    const std::vector<std::string> db_vars = facts["database_url_vars"];
    const std::vector<std::string> kafka_vars = facts["kafka_brokers_vars"];
    const std::string listen = facts["listen"];
    const int replicas = facts["replicas"];
    const auto grace = std::chrono::seconds(facts["grace_seconds"].get<int>());
    ASSERT_FALSE(db_vars.empty()) << "the pipeline file takes no database URL from the environment";
    ASSERT_FALSE(kafka_vars.empty()) << "the pipeline file takes no brokers from the environment";
    ASSERT_GE(replicas, 2) << "the Deployment is meant to run several engines on one outbox";

    auto& pg = ts::Postgres::shared();
    const std::string db = "deploy_" + std::to_string(::getpid());
    const std::string conninfo = pg.create_database(db);
    ts::MockKafka kafka(3);
    const auto pipeline = facts["pipelines"].begin();
    const std::string pipeline_name = pipeline.key();
    const std::string topic = pipeline.value()["topic"];
    kafka.create_topic(topic, 4);

    // The listener's port is the one thing of the file that changes: replicas share this host.
    const std::string text = facts["pipeline_toml"];
    const std::string quoted_listen = "\"" + listen + "\"";
    ASSERT_EQ(text.find(quoted_listen), text.rfind(quoted_listen)) << "http_listen's value appears more than once";
    ASSERT_NE(text.find(quoted_listen), std::string::npos) << "no literal " << quoted_listen << " in the pipeline file";
    const std::string host = listen.substr(0, listen.rfind(':'));
    const std::string user = ::geteuid() == 0 ? "nobody" : "";

    std::string token;
    std::vector<Replica> pods(replicas);
    for (int i = 0; i < replicas; ++i) {
        Replica& r = pods[i];
        r.pod_name = "spillway-7c9d8f6b5-r" + std::to_string(i);
        r.port = ts::free_port();
        r.dir = std::make_unique<ts::TempDir>("deploy-" + r.pod_name);
        r.log_path = r.dir->path() + "/engine.log";
        // Readable, not writable, by the engine's user: a ConfigMap volume.
        fs::permissions(r.dir->path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                           fs::perms::others_read | fs::perms::others_exec);
        const std::string config = r.dir->path() + "/" + fs::path(argv[config_index]).filename().string();
        std::string file = text;
        file.replace(file.find(quoted_listen), quoted_listen.size(), "\"" + host + ":" + std::to_string(r.port) + "\"");
        std::ofstream(config) << file;

        std::vector<std::string> command = {SPILLWAY_BIN};
        command.insert(command.end(), argv.begin() + 1, argv.end());
        command[config_index] = config;
        std::vector<std::string> env;
        for (const json& e : facts["env"]) {
            const std::string name = e["name"];
            std::string value = e["value"];
            if (e["pod_name"]) value = r.pod_name;
            if (contains(db_vars, name)) value = conninfo;
            if (contains(kafka_vars, name)) value = kafka.bootstraps();
            if (name == facts["token_var"]) token = value;
            env.push_back(name + "=" + value);
        }
        r.process = ts::ChildProcess(ts::ChildSpec{.argv = command,
                                                   .log_path = r.log_path,
                                                   .run_as_user = user,
                                                   .death_signal = SIGKILL,
                                                   .env = env});
    }

    // Ready, as the kubelet sees it: every replica answers every probe path with 200.
    for (Replica& r : pods) {
        const bool ready = ts::wait_until(
            [&] {
                if (!r.process.running()) return true;
                auto res = r.get(facts["readiness_path"]);
                return res && res->status == 200;
            },
            60s, 50ms);
        ASSERT_TRUE(ready && r.process.running())
            << r.pod_name << " never became ready (" << r.process.describe_exit() << "):\n" << ts::file_tail(r.log_path);
        for (const std::string path : facts["probe_paths"]) {
            auto res = r.get(path);
            ASSERT_TRUE(res) << r.pod_name << " GET " << path << ": " << httplib::to_string(res.error());
            EXPECT_EQ(res->status, 200) << r.pod_name << " GET " << path << ": " << res->body;
        }
    }

    // Each replica is on the database under its pod's name: the engine read SPILLWAY_MEMBER_ID and
    // named its pipeline's hold (or coordination) session after it.
    const auto sessions = pg.query(db, "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()");
    std::string names;
    for (const auto& row : sessions) names += " '" + row[0] + "'";
    for (const Replica& r : pods) {
        const bool named = std::any_of(sessions.begin(), sessions.end(),
                                       [&](const auto& row) { return row[0].find(r.pod_name) != std::string::npos; });
        EXPECT_TRUE(named) << "no session's application_name names " << r.pod_name << ":" << names;
    }

    // The ingress takes an event with the Secret's token, refuses one without, and a relay of one
    // of the replicas delivers it.
    const std::string events = "/v1/pipelines/" + pipeline_name + "/events";
    const std::string body = R"({"key":"order-1","payload":{"order":1}})";
    httplib::Client anonymous("127.0.0.1", pods[1].port);
    auto refused = anonymous.Post(events, body, "application/json");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 401) << refused->body;
    httplib::Client client("127.0.0.1", pods[0].port);
    client.set_bearer_token_auth(token);
    client.set_read_timeout(10s);
    auto accepted = client.Post(events, body, "application/json");
    ASSERT_TRUE(accepted);
    ASSERT_EQ(accepted->status, 202) << accepted->body;
    const std::string event_id = json::parse(accepted->body)["results"][0]["event_id"];
    const auto records = kafka.consume_all(topic, 1, 30s);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].header("event_id").value_or("(no event_id header)"), event_id);

    // SIGTERM, as the kubelet sends it: each replica is gone, cleanly, within the grace period.
    for (Replica& r : pods) r.process.signal(SIGTERM);
    const auto signalled = std::chrono::steady_clock::now();
    for (Replica& r : pods) {
        EXPECT_TRUE(r.process.wait_exit(grace)) << r.pod_name << " still runs " << grace.count()
                                                << " s after SIGTERM:\n" << ts::file_tail(r.log_path);
        EXPECT_TRUE(r.process.exited_ok()) << r.pod_name << " " << r.process.describe_exit() << ":\n"
                                           << ts::file_tail(r.log_path);
    }
    std::printf("%d replicas ready, probes %s answered 200, one event delivered; all stopped %.1f s after SIGTERM\n",
                replicas, facts["probe_paths"].dump().c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count());
}

}  // namespace
}  // namespace spillway::deploy_test
