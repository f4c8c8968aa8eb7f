// spillway-webhook: an example sink that POSTs each event's payload to `url` (plain http://), one
// request per event. 2xx is OK, 4xx REJECT, 5xx and connection failures RETRY. It knows its
// destination only from its sends: health is what the last send learnt. It does not watch the
// destination for recovery; the engine's trial send does that (plugin.h, "the health contract").
#include <spillway/sdk.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>

namespace {

using namespace spillway::sdk;

struct Url {
    std::string host, port, path;
};

Url parse_url(const std::string& url) {
    const std::string scheme = "http://";
    if (url.compare(0, scheme.size(), scheme) != 0) throw ConfigError("url", "must start with http:// (got \"" + url + "\")");
    const std::string rest = url.substr(scheme.size());
    const size_t slash = rest.find('/');
    const std::string authority = rest.substr(0, slash);
    const size_t colon = authority.rfind(':');
    Url u{authority.substr(0, colon), colon == std::string::npos ? "80" : authority.substr(colon + 1),
          slash == std::string::npos ? "/" : rest.substr(slash)};
    if (u.host.empty()) throw ConfigError("url", "has no host");
    return u;
}

// Closes the socket on every way out.
struct Socket {
    int fd = -1;
    ~Socket() {
        if (fd >= 0) ::close(fd);
    }
};

class WebhookSink : public Sink {
public:
    explicit WebhookSink(Host host) : Sink(host), url_(parse_url(host.string("url"))) {}

    void send(std::span<const sw_event> events, std::span<sw_result> results, int64_t timeout_ms) override {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        size_t i = 0;
        for (; i < events.size(); ++i) {
            const int code = post(events[i], deadline, results[i]);
            if (code >= 200 && code < 300) set_result(results[i], SW_OK);
            else if (code >= 400 && code < 500) set_result(results[i], SW_REJECT, "HTTP " + std::to_string(code));
            else if (code > 0) set_result(results[i], SW_RETRY, "HTTP " + std::to_string(code));
            up_ = results[i].status != SW_RETRY;
            // Stop at the first failure: later events (of its key, perhaps) must not overtake it.
            if (results[i].status == SW_RETRY) break;
        }
        for (size_t j = i + 1; j < events.size(); ++j) set_result(results[j], SW_RETRY, "not sent: an earlier event failed");
    }

    void health(sw_health& h) override {
        h.state = up_ ? SW_HEALTH_UP : SW_HEALTH_DOWN;
        if (!up_) set_message(h, "the last send to " + url_.host + ":" + url_.port + " failed");
    }

private:
    // The response's status code, or 0 with a RETRY already in `r`.
    int post(const sw_event& e, std::chrono::steady_clock::time_point deadline, sw_result& r) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return set_result(r, SW_RETRY, "no time left"), 0;
        addrinfo hints{}, *found = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(url_.host.c_str(), url_.port.c_str(), &hints, &found) != 0 || !found)
            return set_result(r, SW_RETRY, "cannot resolve " + url_.host), 0;
        Socket s{::socket(found->ai_family, SOCK_STREAM, 0)};
        timeval tv{static_cast<time_t>(left.count() / 1000), static_cast<suseconds_t>(left.count() % 1000 * 1000)};
        setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect() too
        setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const int connected = ::connect(s.fd, found->ai_addr, found->ai_addrlen);
        freeaddrinfo(found);
        if (connected != 0) return set_result(r, SW_RETRY, std::string("connect: ") + std::strerror(errno)), 0;
        const std::string_view body = view(e.payload);
        std::string request = "POST " + url_.path + " HTTP/1.1\r\nHost: " + url_.host +
                              "\r\nContent-Type: application/json\r\nConnection: close\r\nX-Event-Id: " +
                              std::string(view(e.event_id)) + "\r\nX-Topic: " + std::string(view(e.topic)) +
                              "\r\nX-Key: " + std::string(view(e.key)) +
                              "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
        request += body;
        for (size_t off = 0; off < request.size();) {
            const ssize_t n = ::send(s.fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return set_result(r, SW_RETRY, std::string("send: ") + std::strerror(errno)), 0;
            off += static_cast<size_t>(n);
        }
        char head[64];  // "HTTP/1.1 200 OK" is all we read
        size_t got = 0;
        while (got < 12) {
            const ssize_t n = ::recv(s.fd, head + got, sizeof head - got, 0);
            if (n <= 0) return set_result(r, SW_RETRY, "no response", SW_RESULT_POSSIBLY_DELIVERED), 0;
            got += static_cast<size_t>(n);
        }
        return std::atoi(std::string(head + 9, 3).c_str());
    }

    const Url url_;
    std::atomic<bool> up_{true};
};

const sw_option kOptions[] = {{"url", SW_OPT_STRING, SW_OPT_REQUIRED, nullptr, "Where each event's payload is POSTed (http://host:port/path)"}};

}  // namespace

// Not THREAD_SAFE: the engine calls it from one thread at a time.
SW_EXPORT_SINK(WebhookSink, "webhook", "1.0.0", "POSTs each event's payload to an HTTP endpoint", kOptions, 0)
