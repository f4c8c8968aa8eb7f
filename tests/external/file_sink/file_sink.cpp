// spillway-file: an example sink that appends each event as one JSON line to the file `path`.
#include <spillway/sdk.hpp>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>

namespace {

using namespace spillway::sdk;

std::string json(sw_bytes b) {  // a JSON string, or null for an absent field
    if (!present(b)) return "null";
    std::string out = "\"";
    for (unsigned char c : view(b)) {
        char esc[8];
        if (c == '"' || c == '\\') out += {'\\', static_cast<char>(c)};
        else if (c < 0x20) out.append(esc, std::snprintf(esc, sizeof esc, "\\u%04x", c));
        else out += static_cast<char>(c);
    }
    return out + "\"";
}

std::string headers(const sw_event& e) {  // [["name","value"], ...]
    std::string out = "[";
    for (size_t i = 0; i < e.n_headers; ++i)
        out += (i ? ",[" : "[") + json(e.headers[i].name) + "," + json(e.headers[i].value) + "]";
    return out + "]";
}

class FileSink : public Sink {
public:
    explicit FileSink(Host host) : Sink(host), path_(host.string("path")) {
        if (path_.empty()) throw ConfigError("path", "must name a file");
    }
    void start() override {
        out_.open(path_, std::ios::app);  // connect in start(): the constructor also serves validate
        if (!out_) throw Error(SW_RETRY, "cannot open " + path_);
    }
    void stop(int64_t) override { std::lock_guard lock(mutex_); out_.close(); }
    void send(std::span<const sw_event> events, std::span<sw_result> results, int64_t) override {
        std::lock_guard lock(mutex_);
        for (const sw_event& e : events)
            out_ << "{\"event_id\":" << json(e.event_id) << ",\"topic\":" << json(e.topic) << ",\"key\":"
                 << json(e.key) << ",\"payload\":" << json(e.payload) << ",\"headers\":" << headers(e) << "}\n";
        out_.flush();  // written (to the OS) is what OK promises here
        for (sw_result& r : results) set_result(r, out_ ? SW_OK : SW_RETRY, out_ ? "" : "write failed");
        host().count("file_sink_events_total", static_cast<double>(events.size()), out_ ? "result=ok" : "result=retry");
    }
    void flush(int64_t) override { std::lock_guard lock(mutex_); out_.flush(); }
    void health(sw_health& h) override {
        std::lock_guard lock(mutex_);
        h.state = out_.is_open() && out_ ? SW_HEALTH_UP : SW_HEALTH_DOWN;
    }

private:
    const std::string path_;
    std::mutex mutex_;  // the plugin says THREAD_SAFE: sends may overlap
    std::ofstream out_;
};

const sw_option kOptions[] = {{"path", SW_OPT_STRING, SW_OPT_REQUIRED, nullptr, "The file events are appended to"}};

}  // namespace

SW_EXPORT_SINK(FileSink, "file", "1.0.0", "Appends each event as a JSON line to a file", kOptions, SW_PLUGIN_THREAD_SAFE)
