// A C++ plugin whose constructor throws: the SDK must turn that into a status and a message, and
// the engine must refuse the component and keep running.
#include <spillway/sdk.hpp>

#include <stdexcept>

class ThrowingSink final : public spillway::sdk::Sink {
public:
    explicit ThrowingSink(spillway::sdk::Host h) : Sink(h) {
        throw std::runtime_error("cannot reach the moon from here");
    }
    void send(std::span<const sw_event>, std::span<sw_result>, int64_t) override {}
};

static const sw_option kOptions[] = {{"target", SW_OPT_STRING, 0, "moon", "where to go"}};
SW_EXPORT_SINK(ThrowingSink, "throwing", "1.0.0", "throws from create", kOptions, 0)
