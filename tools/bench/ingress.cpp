// ingress: the HTTP ingress (NDJSON batches of 100) against the C++ publisher API. The HTTP server
// (engine/http) is not in the tree yet; until it is, the scenario reports itself pending.
#include "context.hpp"

namespace spillway::bench {

Report run_ingress(Context&) {
    Report rep("ingress");
    rep.pending("the HTTP ingress server (spillway::http::Server in engine/http) is not in the tree yet; "
                "target: >= 50% of the C++ API's events/s with NDJSON batches of 100");
    return rep;
}

}  // namespace spillway::bench
