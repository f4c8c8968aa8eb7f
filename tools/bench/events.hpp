// The events every scenario sends: 100 keys, a JSON payload of about 256 bytes.
#pragma once

#include "raw_kafka.hpp"

#include "engine/pipeline/event.hpp"

#include <string>

namespace spillway::bench {

inline constexpr size_t kPayloadBytes = 256;
inline constexpr int kKeys = 100;

inline std::string payload_for(size_t seq) {
    std::string p = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
    p.append(kPayloadBytes > p.size() + 2 ? kPayloadBytes - p.size() - 2 : 0, 'x');
    return p + "\"}";
}

inline pipeline::Event engine_event(size_t seq) {
    pipeline::Event e;
    e.key = "key-" + std::to_string(seq % kKeys);
    e.payload = payload_for(seq);
    return e;
}

inline RawRecord raw_record(size_t seq) {
    return {pipeline::uuid_v7(), "key-" + std::to_string(seq % kKeys), payload_for(seq)};
}

}  // namespace spillway::bench
