#include "engine/http/client.hpp"

#include <httplib.h>

namespace spillway::http {

std::string admin_get(const std::string& base_url, const std::string& path, const std::string& token,
                      std::chrono::milliseconds timeout) {
    std::string url = base_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (url.find("://") == std::string::npos) url = "http://" + url;
    httplib::Client client(url);
    if (!client.is_valid()) throw std::runtime_error(url + ": not a usable URL (expected http://host:port)");
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    if (!token.empty()) client.set_bearer_token_auth(token);
    auto res = client.Get(path);
    if (!res) {
        const std::string why = res.error() == httplib::Error::Connection ? "cannot connect (is the engine running with http_listen?)"
                                : res.error() == httplib::Error::Read      ? "no answer in time"
                                                                           : "request failed (" + httplib::to_string(res.error()) + ")";
        throw std::runtime_error(url + path + ": " + why);
    }
    if (res->status != 200) {
        std::string body = res->body;
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
        throw std::runtime_error(url + path + ": HTTP " + std::to_string(res->status) + (body.empty() ? "" : ": " + body));
    }
    return res->body;
}

}  // namespace spillway::http
