// The "scripted" fake transform: what it does to an event is read from the event itself, so a test
// steers it per event and the transform stays the pure function the ABI asks for. Payload markers:
//   "drop":true       dropped (with the reason "asked to drop")
//   "reject":true     rejected (with the reason "asked to reject")
//   "fail":true       the whole call fails with RETRY (a transform that cannot work now)
// Every other event goes on with topic "<topic>.<tag>" (tag: the option, when `retopic` is true)
// and a header "x-tag-<tag>" = tag appended, so a chain's order shows in the headers it leaves.
#include <spillway/sdk.hpp>

#include <string>
#include <string_view>

namespace {

using namespace spillway;

class ScriptedTransform final : public sdk::Transform {
public:
    explicit ScriptedTransform(sdk::Host host)
        : Transform(host), tag_(host.string("tag")), retopic_(host.opt_bool("retopic").value_or(false)) {}

    void apply(sdk::Edit& e) override {
        const std::string_view payload = sdk::view(e.in().payload);
        if (payload.find("\"fail\":true") != std::string_view::npos)
            throw sdk::Error(SW_RETRY, "asked to fail the call");
        if (payload.find("\"drop\":true") != std::string_view::npos) return e.drop("asked to drop");
        if (payload.find("\"reject\":true") != std::string_view::npos) return e.reject("asked to reject");
        if (retopic_) e.set_topic(std::string(sdk::view(e.in().topic)) + "." + tag_);
        e.set_header("x-tag-" + tag_, tag_);
    }

private:
    std::string tag_;
    bool retopic_;
};

const sw_option kOptions[] = {
    {"tag", SW_OPT_STRING, SW_OPT_REQUIRED, nullptr, "what the transform appends"},
    {"retopic", SW_OPT_BOOL, 0, "false", "append .<tag> to the topic"},
};

}  // namespace

SW_EXPORT_TRANSFORM(ScriptedTransform, "scripted", "1.0.0", "fake transform steered by the event's payload",
                    kOptions, SW_PLUGIN_THREAD_SAFE)
