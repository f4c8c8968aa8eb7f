#include "engine/http/server.hpp"

#include "engine/engine.hpp"
#include "engine/http/inflate.hpp"
#include "engine/http/routes.hpp"
#include "engine/observe/log.hpp"
#include "engine/pipeline/trace_context.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <limits>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace spillway::http {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Threads that parse and write, and run a handler themselves while one of them stays free for
// the rest: a handler answered where its body was read costs no hand-off between threads (the
// ingress's latency), and no number of slow handlers can leave the sockets unserved.
constexpr size_t kIoThreads = 2;
// Threads for the handlers beyond that: a publish may wait for Kafka's acknowledgement (up to the
// pipeline's direct_timeout) or the outbox commit.
constexpr size_t kWorkers = 16;
constexpr size_t kFirstRead = 64 * 1024;
// A connection past http_max_connections gets this long to send one probe request.
constexpr auto kOverflowDeadline = 2s;
// After an answer that closes the connection, what the client still sends is read and dropped
// for this long, so that its TCP stack does not reset the connection before our answer is read.
constexpr auto kLingerDeadline = 1s;

std::string lower_trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Compares without stopping at the first difference, so timing tells nothing about the token.
bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

std::string ms_text(int64_t ms) { return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms"; }

}  // namespace

class Connection;

struct Server::Impl {
    Engine& engine;
    std::string host;
    int requested_port = 0;
    int port = 0;
    std::string token;
    config::HttpLimits limits;
    Api api;
    std::shared_ptr<spdlog::logger> log = observe::logger("http");

    // Connections register themselves; stop() walks them. Declared before the io_context, whose
    // destruction may destroy the last sessions.
    std::mutex mu;
    std::condition_variable gone;
    std::unordered_map<Connection*, std::weak_ptr<Connection>> sessions;
    std::atomic<bool> stopping{false};
    bool started = false, stopped = false;

    net::io_context ioc{static_cast<int>(kIoThreads)};
    tcp::acceptor acceptor{net::make_strand(ioc)};
    net::steady_timer accept_backoff{acceptor.get_executor()};
    net::thread_pool workers{kWorkers};  // joined before the io_context goes
    std::atomic<size_t> handling_inline{0};  // handlers running on io threads now
    std::vector<std::thread> threads;

    Impl(Engine& e, std::string t, const config::HttpLimits& l) : engine(e), token(std::move(t)), limits(l), api(e, l) {}

    void accept();
    void on_accept(tcp::socket socket);
    void count(Route route, int status) {
        engine.metrics().add("http_requests_total", {{"route", route_label(route)}, {"code", std::to_string(status)}});
    }
    void connections_changed(size_t open) { engine.metrics().set("http_connections", {}, static_cast<double>(open)); }
    // Calls `fn` on every live session, outside the lock.
    template <class Fn>
    void each_session(Fn fn);
};

// One connection: reads a request's header, decides (route, token, limits) before reading its
// body, answers, and reads the next. Every step runs on the connection's strand; only the
// handler of a blocking route runs on the worker pool, with the session idle meanwhile.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Server::Impl& srv, tcp::socket socket, bool overflow)
        : srv_(srv), stream_(std::move(socket)), deadline_(stream_.get_executor()), overflow_(overflow) {}

    ~Connection() {
        size_t open = 0;
        {
            std::lock_guard lock(srv_.mu);
            srv_.sessions.erase(this);
            open = srv_.sessions.size();
        }
        srv_.connections_changed(open);
        srv_.gone.notify_all();
    }

    // Registers and starts reading.
    void run() {
        size_t open = 0;
        {
            std::lock_guard lock(srv_.mu);
            srv_.sessions.emplace(this, weak_from_this());
            open = srv_.sessions.size();
        }
        srv_.connections_changed(open);
        net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->wait_request(); });
    }

    // From any thread: closes the connection now if it waits for a request (or `force`), else
    // once its request in flight is answered.
    void shut(bool force) {
        net::post(stream_.get_executor(), [self = shared_from_this(), force] {
            self->closing_ = true;
            if (force || self->state_ == State::Idle) self->close_now();
        });
    }

private:
    enum class State { Idle, Reading, Handling, Writing };

    const config::HttpLimits& limits() const { return srv_.limits; }

    void wait_request() {
        if (closed_) return;
        if (closing_ || srv_.stopping) return close_now();
        state_ = State::Idle;
        parser_.emplace();
        parser_->header_limit(static_cast<uint32_t>(limits().max_header_bytes));
        // The body limit is checked by us once the header is read (a Content-Length past it is
        // refused before any body byte, and only after the token check); Beast enforces it on
        // chunked bodies from then on.
        parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: 1.74 compares lengths against it
        request_ = Request{};
        encoding_.clear();
        close_after_ = false;
        if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
        stream_.expires_after(overflow_ ? std::chrono::milliseconds(kOverflowDeadline)
                                        : std::chrono::milliseconds(limits().idle_timeout_ms));
        // One read takes what has arrived, a whole small request usually: no further round
        // through the reactor for its header and body.
        stream_.async_read_some(buffer_.prepare(kFirstRead), [self = shared_from_this()](beast::error_code ec, size_t n) {
            self->buffer_.commit(n);
            if (ec) return self->close_now();
            self->read_header();
        });
    }

    void read_header() {
        state_ = State::Reading;
        // One deadline from the request's first byte to its last body byte: a client that
        // trickles its header or body cannot hold the connection longer than this. Our own timer,
        // not the stream's (which would close the socket), so the client can be told with a 408.
        stream_.expires_never();
        deadline_.expires_after(overflow_ ? std::chrono::milliseconds(kOverflowDeadline)
                                          : std::chrono::milliseconds(limits().request_timeout_ms));
        deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec || self->state_ != State::Reading || self->closed_) return;
            self->timed_out_ = true;
            beast::error_code ignored;
            self->stream_.socket().cancel(ignored);
        });
        bhttp::async_read_header(stream_, buffer_, *parser_,
                                 [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
    }

    // A read that ended because the request deadline passed: the client is told, then dropped.
    bool deadline_passed() {
        if (!timed_out_) return false;
        refuse(408, "request not complete within " + ms_text(limits().request_timeout_ms) + " (engine.http_request_timeout)", {},
               request_.match.route);
        return true;
    }

    void on_header(beast::error_code ec) {
        if (deadline_passed()) return;
        if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
            ec == net::error::operation_aborted || ec == net::error::connection_reset)
            return close_now();  // gone, or too slow (the stream closed the socket at the deadline)
        if (ec == bhttp::error::header_limit)
            return refuse(431, "request header larger than " + std::to_string(limits().max_header_bytes) +
                                   " bytes (engine.http_max_header_bytes)");
        if (ec) return refuse(400, "bad request: " + ec.message());

        const auto& req = parser_->get();
        if (static_cast<int64_t>(std::distance(req.begin(), req.end())) > limits().max_headers)
            return refuse(431, "more than " + std::to_string(limits().max_headers) + " header fields (engine.http_max_headers)");
        const std::string_view target(req.target().data(), req.target().size());
        const size_t q = target.find('?');
        request_.target = std::string(target.substr(0, q));
        if (q != std::string_view::npos) request_.query = std::string(target.substr(q + 1));
        request_.match = match_route(std::string_view(req.method_string().data(), req.method_string().size()), request_.target);
        const Route route = request_.match.route;
        const auto length = parser_->content_length();
        const bool has_body = parser_->chunked() || (length && *length > 0);
        if (overflow_) {
            if (is_probe(route) && !has_body) return handle(/*close=*/true);
            return refuse(503, "connection limit (" + std::to_string(limits().max_connections) +
                                   ") reached (engine.http_max_connections); retry shortly",
                          {{"Retry-After", "1"}}, route);
        }
        if (!srv_.token.empty() && needs_token(request_.target)) {
            const auto auth = req[bhttp::field::authorization];
            const std::string_view bearer = "Bearer ";
            const std::string_view given(auth.data(), auth.size());
            if (given.substr(0, bearer.size()) != bearer || !constant_time_equal(given.substr(bearer.size()), srv_.token)) {
                close_after_ = has_body;  // its body is never read
                return answer(error_response(401, auth.empty() ? "missing Authorization: Bearer token" : "wrong bearer token"),
                              {{"WWW-Authenticate", "Bearer"}});
            }
        }
        if (!takes_body(route)) {
            close_after_ = has_body;  // probes, metrics and reads take no body: it is not read
            return handle(false);
        }
        const std::string encoding = lower_trimmed(std::string_view(req[bhttp::field::content_encoding].data(),
                                                                    req[bhttp::field::content_encoding].size()));
        if (!encoding.empty() && encoding != "identity") {
            const bool known = encoding == "gzip" || encoding == "x-gzip" || encoding == "deflate";
            if (!known)
                return refuse(415, "Content-Encoding " + encoding + " is not accepted; send identity" +
                                       std::string(limits().gzip ? ", gzip or deflate" : " (gzip and deflate need engine.http_gzip = true)"),
                              {}, route);
            if (!limits().gzip)
                return refuse(415, "Content-Encoding " + encoding + " is not accepted; set engine.http_gzip = true", {}, route);
            encoding_ = encoding;
        }
        request_.content_type = std::string(req[bhttp::field::content_type]);
        const auto field = [](std::string_view name) { return beast::string_view(name.data(), name.size()); };
        for (auto [at, end] = req.equal_range(field(pipeline::kTraceparent)); at != end; ++at) {
            request_.traceparent = std::string(at->value());
            ++request_.traceparents;
        }
        for (auto [at, end] = req.equal_range(field(pipeline::kTracestate)); at != end; ++at)
            request_.tracestate += (request_.tracestate.empty() ? "" : ",") + std::string(at->value());
        if (route == Route::Publish) {
            if (std::string why = refuse_content_type(request_.content_type); !why.empty()) return refuse(415, why, {}, route);
            if (!parser_->chunked() && !length)
                return refuse(411, "Content-Length or Transfer-Encoding: chunked required", {}, route);
        }
        const auto max_body = static_cast<uint64_t>(limits().max_body_bytes);
        if (length && *length > max_body) return refuse(413, too_large(), {}, route);
        parser_->body_limit(max_body);
        if (parser_->is_done()) return on_body({});  // a route that takes a body was sent none
        if (lower_trimmed(std::string_view(req[bhttp::field::expect].data(), req[bhttp::field::expect].size())) == "100-continue") {
            // The client waits for this before sending its body: it comes only once the header passed.
            continue_.emplace(bhttp::status::continue_, req.version());
            stream_.expires_after(std::chrono::milliseconds(limits().request_timeout_ms));
            return bhttp::async_write(stream_, *continue_, [self = shared_from_this()](beast::error_code ec, size_t) {
                if (ec) return self->close_now();
                self->stream_.expires_never();
                self->read_body();
            });
        }
        read_body();
    }

    std::string too_large() const {
        return "request body larger than " + std::to_string(limits().max_body_bytes) + " bytes (engine.http_max_body_bytes)";
    }

    void read_body() {
        bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->on_body(ec);
        });
    }

    void on_body(beast::error_code ec) {
        if (deadline_passed()) return;
        const Route route = request_.match.route;
        if (ec == bhttp::error::body_limit) return refuse(413, too_large(), {}, route);
        if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
            ec == net::error::operation_aborted || ec == net::error::connection_reset)
            return close_now();
        if (ec) return refuse(400, "bad request body: " + ec.message(), {}, route);
        request_.body = std::move(parser_->get().body());
        if (!encoding_.empty()) {
            try {
                request_.body = inflate_body(request_.body, static_cast<size_t>(limits().max_body_bytes));
            } catch (const InflateTooLarge&) {
                return refuse(413, "decompressed " + too_large(), {}, route);
            } catch (const std::exception& e) {
                return refuse(400, "Content-Encoding " + encoding_ + ": " + e.what(), {}, route);
            }
        }
        handle(false);
    }

    // Answers the request read so far: /healthz here, anything that may block on the worker pool.
    void handle(bool close) {
        close_after_ = close_after_ || close;
        state_ = State::Handling;
        if (request_.match.route == Route::Healthz) return answer(srv_.api.handle(request_));
        if (srv_.handling_inline.fetch_add(1) < kIoThreads - 1) {
            Response res = run_handler();
            srv_.handling_inline.fetch_sub(1);
            return answer(std::move(res));
        }
        srv_.handling_inline.fetch_sub(1);
        net::post(srv_.workers, [self = shared_from_this()] {
            Response res = self->run_handler();
            net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable { self->answer(std::move(res)); });
        });
    }

    Response run_handler() {
        try {
            return srv_.api.handle(request_);
        } catch (const std::exception& e) {
            srv_.log->error("{}: {}", request_.target, e.what());
            return error_response(500, std::string("internal error: ") + e.what());
        }
    }

    // An answer decided by the transport: the connection closes after it.
    void refuse(int status, const std::string& message, std::vector<std::pair<std::string, std::string>> headers = {},
                Route route = Route::NotFound) {
        close_after_ = true;
        request_.match.route = route;
        answer(error_response(status, message), std::move(headers));
    }

    void answer(Response r, std::vector<std::pair<std::string, std::string>> extra = {}) {
        if (closed_) return;
        deadline_.cancel();
        // Counted before the answer goes out, so a client that saw it also sees it counted.
        srv_.count(request_.match.route, r.status);
        const bool keep_alive = parser_ && parser_->is_header_done() && parser_->get().keep_alive() && !close_after_ &&
                                !closing_ && !srv_.stopping;
        if (srv_.log->should_log(spdlog::level::debug))
            srv_.log->debug("{} {} -> {}", parser_ && parser_->is_header_done() ? std::string(parser_->get().method_string()) : "-",
                            request_.target, r.status);
        res_.emplace(static_cast<bhttp::status>(r.status), parser_ && parser_->is_header_done() ? parser_->get().version() : 11);
        res_->set(bhttp::field::content_type, r.content_type);
        for (const auto& [name, value] : r.headers) res_->set(name, value);
        for (const auto& [name, value] : extra) res_->set(name, value);
        res_->body() = std::move(r.body);
        res_->keep_alive(keep_alive);
        res_->prepare_payload();
        state_ = State::Writing;
        stream_.expires_after(std::chrono::milliseconds(limits().request_timeout_ms));
        bhttp::async_write(stream_, *res_, [self = shared_from_this()](beast::error_code ec, size_t) {
            const bool keep = self->res_->keep_alive();
            self->res_.reset();
            if (ec) return self->close_now();
            if (!keep) return self->linger();
            self->wait_request();
        });
    }

    // Half-closes and drops what the client still sends for a moment, then closes: closing with
    // unread bytes would reset the connection, and the client could lose our answer with it.
    void linger() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return close_now();
        stream_.expires_after(kLingerDeadline);
        drain();
    }

    void drain() {
        stream_.async_read_some(net::buffer(sink_), [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return self->close_now();
            self->drain();
        });
    }

    void close_now() {
        if (closed_) return;
        closed_ = true;
        deadline_.cancel();
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    Server::Impl& srv_;
    beast::tcp_stream stream_;
    net::steady_timer deadline_;  // the request's, while it is being read
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::optional<bhttp::response<bhttp::string_body>> res_;
    std::optional<bhttp::response<bhttp::empty_body>> continue_;
    Request request_;
    std::string encoding_;
    char sink_[4096];
    State state_ = State::Idle;
    const bool overflow_;
    bool close_after_ = false;
    bool timed_out_ = false;
    bool closing_ = false;
    bool closed_ = false;
};

template <class Fn>
void Server::Impl::each_session(Fn fn) {
    std::vector<std::shared_ptr<Connection>> live;
    {
        std::lock_guard lock(mu);
        for (auto& [ptr, weak] : sessions)
            if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    for (auto& s : live) fn(*s);
}

void Server::Impl::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (!acceptor.is_open() || stopping) return;
        if (ec) {
            // Out of descriptors and the like: retry after a pause, never in a tight loop.
            log->warn("HTTP accept failed: {}; retrying in 100 ms", ec.message());
            accept_backoff.expires_after(100ms);
            accept_backoff.async_wait([this](beast::error_code) { accept(); });
            return;
        }
        on_accept(std::move(socket));
        accept();
    });
}

void Server::Impl::on_accept(tcp::socket socket) {
    size_t open = 0;
    {
        std::lock_guard lock(mu);
        open = sessions.size();
    }
    const auto cap = static_cast<size_t>(limits.max_connections);
    if (open >= 2 * cap) {
        engine.metrics().add("http_connections_refused_total", {{"how", "closed"}});
        beast::error_code ec;
        socket.close(ec);
        return;
    }
    const bool overflow = open >= cap;
    if (overflow) engine.metrics().add("http_connections_refused_total", {{"how", "probe_only"}});
    beast::error_code ec;
    // Small JSON answers must not wait for Nagle's algorithm (a 40 ms stall per request otherwise).
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Connection>(*this, std::move(socket), overflow)->run();
}

std::pair<std::string, int> parse_listen(const std::string& listen) {
    const auto bad = [&](const std::string& why) {
        return std::invalid_argument("http_listen \"" + listen + "\": " + why + " (expected host:port, e.g. 127.0.0.1:8080)");
    };
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) throw bad("no host:port");
    std::string host = listen.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']') throw bad("unclosed [");
        host = host.substr(1, host.size() - 2);
    }
    const std::string port_text = listen.substr(colon + 1);
    int port = -1;
    if (!port_text.empty() && port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos)
        port = std::stoi(port_text);
    if (port < 0 || port > 65535) throw bad("port must be 0..65535");
    if (host.empty()) throw bad("empty host");
    return {host, port};
}

Server::Server(Engine& engine, std::string listen, std::string token, config::HttpLimits limits)
    : impl_(std::make_unique<Impl>(engine, std::move(token), limits)) {
    auto [host, port] = parse_listen(listen);
    impl_->host = host;
    impl_->requested_port = port;
}

Server::~Server() { stop(); }

void Server::start() {
    Impl& d = *impl_;
    if (d.started) return;
    const std::string where = d.host + ":" + std::to_string(d.requested_port);
    beast::error_code ec;
    tcp::resolver resolver(d.ioc);
    const auto endpoints = resolver.resolve(d.host, std::to_string(d.requested_port), tcp::resolver::passive, ec);
    if (ec) throw std::runtime_error("http: cannot listen on " + where + ": " + ec.message());
    std::string why = "no address";
    for (const auto& entry : endpoints) {
        beast::error_code e;
        d.acceptor.open(entry.endpoint().protocol(), e);
        // SO_REUSEADDR lets a restart bind at once; never SO_REUSEPORT, which would let a second
        // engine bind the same address and silently take half the requests.
        if (!e) d.acceptor.set_option(net::socket_base::reuse_address(true), e);
        if (!e) d.acceptor.bind(entry.endpoint(), e);
        if (!e) d.acceptor.listen(net::socket_base::max_listen_connections, e);
        if (!e) break;
        why = e.message();
        beast::error_code ignored;
        d.acceptor.close(ignored);
    }
    if (!d.acceptor.is_open())
        throw std::runtime_error("http: cannot listen on " + where + ": " + why +
                                 " (address in use, or not an address of this host)");
    d.port = d.acceptor.local_endpoint().port();
    d.started = true;
    d.accept();
    for (size_t i = 0; i < kIoThreads; ++i)
        d.threads.emplace_back([&d] {
            for (;;) {
                try {
                    d.ioc.run();
                    return;
                } catch (const std::exception& e) {
                    d.log->error("HTTP: {}", e.what());
                }
            }
        });
    d.log->info("HTTP listening on {}:{}{}", d.host, d.port, d.token.empty() ? "" : " (bearer token required on /v1/)");
}

void Server::stop() {
    Impl& d = *impl_;
    if (!d.started || d.stopped) return;
    d.stopped = true;
    d.stopping = true;
    net::post(d.acceptor.get_executor(), [&d] {
        beast::error_code ec;
        d.acceptor.close(ec);
        d.accept_backoff.cancel();
    });
    // Idle connections close now; requests in flight get the shutdown deadline to finish.
    d.each_session([](Connection& s) { s.shut(false); });
    const auto drained = [&d] { return d.sessions.empty(); };
    {
        std::unique_lock lock(d.mu);
        if (!d.gone.wait_for(lock, std::chrono::milliseconds(d.limits.shutdown_timeout_ms), drained))
            d.log->warn("HTTP: {} connection(s) still busy after the shutdown timeout ({}); closing them",
                        d.sessions.size(), ms_text(d.limits.shutdown_timeout_ms));
    }
    d.each_session([](Connection& s) { s.shut(true); });
    d.workers.join();  // handlers in flight finish (a publish is bounded by its direct_timeout)
    {
        std::unique_lock lock(d.mu);
        d.gone.wait_for(lock, 1s, drained);
    }
    d.ioc.stop();
    for (auto& t : d.threads) t.join();
    d.threads.clear();
}

int Server::port() const { return impl_->port; }
const std::string& Server::host() const { return impl_->host; }

}  // namespace spillway::http
