// ingress: NDJSON batches of 100 events POSTed to the engine's HTTP ingress (keep-alive client on
// loopback), against the same batches through the C++ publisher API, in alternating rounds, on a
// direct-first pipeline. Built only when the HTTP server (engine/http/server.hpp) is in the tree;
// otherwise the scenario reports itself pending.
#include "context.hpp"
#include "events.hpp"
#include "rig.hpp"

#if __has_include("engine/http/server.hpp")
#include "engine/http/server.hpp"

#include <httplib.h>

#include <stdexcept>
#endif

namespace spillway::bench {

#if __has_include("engine/http/server.hpp")

namespace {

constexpr size_t kBatch = 100;

std::string ndjson(size_t& seq) {
    std::string body;
    for (size_t i = 0; i < kBatch; ++i, ++seq)
        body += "{\"key\":\"key-" + std::to_string(seq % kKeys) + "\",\"payload\":" + payload_for(seq) + "}\n";
    return body;
}

}  // namespace

Report run_ingress(Context& ctx) {
    Report rep("ingress");
    const auto& s = ctx.settings;
    RigOptions o = own_store_and_topic(ctx, "bench_ingress", "ingress");
    o.probe = false;
    Rig rig(ctx, o);
    http::Server server(rig.engine(), "127.0.0.1:0", "");
    server.start();
    httplib::Client client("127.0.0.1", server.port());
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);  // the client's part; the server's sockets are the server's choice
    const std::string path = "/v1/pipelines/p0/events";

    size_t seq = 0;
    auto post = [&](std::vector<double>* out) {
        const std::string body = ndjson(seq);
        const auto t0 = Clock::now();
        auto res = client.Post(path, body, "application/x-ndjson");
        if (out) out->push_back(us_since(t0));
        if (!res) throw std::runtime_error("ingress: POST failed: " + httplib::to_string(res.error()));
        if (res->status != 202) throw std::runtime_error("ingress: HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 300));
    };
    auto api = [&](std::vector<double>* out) {
        std::vector<pipeline::Event> batch;
        for (size_t i = 0; i < kBatch; ++i) batch.push_back(engine_event(seq++));
        const auto t0 = Clock::now();
        auto outcomes = rig.pipeline().publish(std::move(batch));
        if (out) out->push_back(us_since(t0));
        for (const auto& oc : outcomes)
            if (oc.path != pipeline::Path::Direct) throw std::runtime_error("ingress: an API event went " + std::string(pipeline::path_name(oc.path)));
    };
    for (int i = 0; i < 20; ++i) {
        post(nullptr);
        api(nullptr);
    }
    const size_t per_round = std::max<size_t>(1, s.samples / 10 / s.rounds);  // batches per side and round
    std::vector<double> http_us, api_us;
    double http_s = 0, api_s = 0;
    for (size_t r = 0; r < s.rounds; ++r) {
        auto t0 = Clock::now();
        for (size_t i = 0; i < per_round; ++i) api(&api_us);
        api_s += seconds_since(t0);
        t0 = Clock::now();
        for (size_t i = 0; i < per_round; ++i) post(&http_us);
        http_s += seconds_since(t0);
    }
    server.stop();
    const double events = static_cast<double>(per_round * s.rounds * kBatch);
    auto& thr = rep.add(rate_row("HTTP NDJSON, 100 events/request", "events/s", events / http_s, "C++ API, 100 events/call",
                                 events / api_s));
    thr.targets.push_back(at_least(">= 0.5x the C++ API", *thr.ratio, 0.5));
    thr.note = "one keep-alive client, one request at a time; bound: JSON parsing + HTTP on the same 2 cores as the broker";
    rep.add(latency_row("  per batch of 100", http_us, "C++ API per batch", api_us));
    rep.setting("client", "cpp-httplib keep-alive, sequential requests");
    return rep;
}

#else

Report run_ingress(Context&) {
    Report rep("ingress");
    rep.pending("the HTTP ingress server (spillway::http::Server in engine/http) is not in the tree yet; "
                "target: >= 50% of the C++ API's events/s with NDJSON batches of 100");
    return rep;
}

#endif

}  // namespace spillway::bench
