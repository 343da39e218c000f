// server/http/connection.cpp: the coroutine of one connection, from its
// first byte to its close: read a header (then, if it fits, the body), hand
// the request to the Handler, wait for Respond, write the response, again.
// Note [HTTP server] in docs/server.md.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <limits>

#include "server/http/server_impl.h"

namespace fanin::server {

namespace {

// After a response that closes the connection, read and discard what the
// client still sends (up to this long and this much) before closing, so
// that the close does not reset the connection under the response.
constexpr std::chrono::milliseconds kLingerTime{500};
constexpr size_t kLingerBytes = 1 << 20;
constexpr size_t kFirstRead = 4096;
constexpr std::string_view k100Continue = "HTTP/1.1 100 Continue\r\n\r\n";

using boost::system::error_code;

bool is_http_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string path_of(std::string_view target) {
  const auto q = target.find('?');
  std::string path(target.substr(0, q));
  return path.empty() ? std::string("/") : path;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out;
}

// An extra header the server may send as given: a token name, and a value
// without CR, LF or NUL.
bool sendable(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (unsigned char ch : name)
    if (ch <= 0x20 || ch >= 0x7f || std::string_view("()<>@,;:\\\"/[]?={}").find(static_cast<char>(ch)) !=
                                        std::string_view::npos)
      return false;
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Extra headers the server writes itself.
bool reserved(std::string_view name) {
  return beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
         beast::iequals(name, "server") || beast::iequals(name, "connection");
}

// Decrements the request counters that shutdown() waits on, also when the
// coroutine ends early or its frame is destroyed.
class RequestGuard {
 public:
  explicit RequestGuard(HttpServer::Impl& server) : server_(server) {
    server_.in_flight_.fetch_add(1);
    server_.busy_.fetch_add(1);
  }
  ~RequestGuard() {
    answered();
    written();
  }
  RequestGuard(const RequestGuard&) = delete;
  RequestGuard& operator=(const RequestGuard&) = delete;
  // The response arrived (or the request was abandoned).
  void answered() {
    if (answered_) return;
    answered_ = true;
    server_.in_flight_.fetch_sub(1);
  }
  // The response was written (or will never be).
  void written() {
    if (written_) return;
    written_ = true;
    server_.busy_.fetch_sub(1);
    server_.notify_stop_waiters();
  }

 private:
  HttpServer::Impl& server_;
  bool answered_ = false;
  bool written_ = false;
};

}  // namespace

void Connection::arm(std::chrono::milliseconds timeout) {
  const uint64_t gen = ++deadline_gen;
  timed_out = false;
  deadline.expires_after(timeout);
  deadline.async_wait([self = shared_from_this(), gen](const error_code& ec) {
    if (ec || self->deadline_gen != gen) return;  // disarmed or re-armed meanwhile
    self->timed_out = true;
    error_code ignored;
    self->socket.cancel(ignored);
  });
}

void Connection::disarm() {
  ++deadline_gen;
  deadline.cancel();
}

void Connection::deliver(uint64_t request, HttpResponse answer) {
  if (request != seq || response || aborted) return;
  response = std::move(answer);
  wake.cancel();
}

void Connection::on_drain() {
  if (phase != Phase::kIdle) return;
  error_code ignored;
  socket.cancel(ignored);
}

void Connection::abort() {
  aborted = true;
  error_code ignored;
  socket.close(ignored);
  deadline.cancel();
  wake.cancel();
}

HttpResponse HttpServer::Impl::format_error(std::string_view method, std::string_view path,
                                            int status, const std::string& message) {
  HttpResponse r;
  bool formatted = false;
  if (errors_) {
    try {
      r = errors_(method, path, status, message);
      formatted = true;
    } catch (const std::exception& e) {
      log(std::string("ErrorFormatter threw: ") + e.what());
    } catch (...) {
      log("ErrorFormatter threw");
    }
  }
  if (!formatted) {
    r = HttpResponse{};
    r.body = "{\"error\":\"" + json_escape(message) + "\"}";
  }
  r.status = status;
  return r;
}

Respond HttpServer::Impl::make_respond(std::shared_ptr<ResponseSlot> slot) {
  return [slot = std::move(slot)](HttpResponse response) {
    if (slot->called.exchange(true)) return;
    std::shared_lock lock(slot->hub->mu);
    if (!slot->hub->open) return;  // the server is gone
    if (auto c = slot->connection.lock()) {
      // On the connection's own thread (a reply formatted there, or a
      // Handler answering inside its call), deliver at once: the coroutine
      // checks for a response before every wait, so it cannot miss it, and
      // this saves a scheduler round trip per request. Anywhere else, post.
      if (c->executor.running_in_this_thread()) {
        c->deliver(slot->seq, std::move(response));
        return;
      }
      asio::post(c->executor, [c, seq = slot->seq, r = std::move(response)]() mutable {
        c->deliver(seq, std::move(r));
      });
    }
  };
}

std::function<void(std::function<void()>)> HttpServer::Impl::make_post(
    const std::shared_ptr<Connection>& c) {
  return [this, hub = hub_, weak = std::weak_ptr<Connection>(c)](std::function<void()> fn) {
    std::shared_lock lock(hub->mu);
    if (!hub->open) return;  // the server is gone
    if (auto conn = weak.lock()) post_guarded(conn->executor, std::move(fn));
    else post_guarded(next_context().get_executor(), std::move(fn));
  };
}

asio::awaitable<void> HttpServer::Impl::session(std::shared_ptr<Connection> c, uint64_t id) {
  struct Unregister {
    HttpServer::Impl& server;
    uint64_t id;
    ~Unregister() {
      {
        std::lock_guard lock(server.conns_mu_);
        server.conns_.erase(id);
      }
      server.connections_.fetch_sub(1);
      server.notify_stop_waiters();
    }
  } unregister{*this, id};
  try {
    co_await serve(*c);
  } catch (const std::exception& e) {
    log("connection " + c->remote + " closed after an exception: " + e.what());
  } catch (...) {
    log("connection " + c->remote + " closed after an unknown exception");
  }
  c->disarm();
  c->wake.cancel();
  error_code ignored;
  c->socket.close(ignored);
}

asio::awaitable<void> HttpServer::Impl::read_failed(Connection& c, std::string method,
                                                    std::string target, unsigned version,
                                                    error_code ec,
                                                    std::string_view part,
                                                    std::chrono::milliseconds timeout) {
  if (c.aborted) co_return;
  int status = 0;
  std::string message;
  if (c.timed_out) {
    status = 408;
    message = "request " + std::string(part) + " not received within " +
              std::to_string(timeout.count()) + " ms";
  } else if (ec == http::error::header_limit) {
    status = 431;
    message = "request header exceeds " + std::to_string(options_.header_limit) + " bytes";
  } else if (ec == http::error::body_limit) {
    status = 413;
    message = "request body exceeds " + std::to_string(options_.body_limit) + " bytes";
  } else if (is_http_error(ec) && ec != http::error::end_of_stream &&
             ec != http::error::partial_message) {
    status = 400;
    message = "malformed HTTP request: " + ec.message();
  }
  // Anything else: the client went away (or shutdown cancelled): close.
  if (status != 0)
    co_await write_error_and_close(c, std::move(method), path_of(target), status, message, version);
}

asio::awaitable<void> HttpServer::Impl::serve(Connection& c) {
  beast::flat_buffer buffer;
  bool first = true;
  for (;;) {
    if (c.aborted || draining_.load()) co_return;
    if (buffer.size() == 0) {
      // Wait for the first byte of the next request.
      c.phase = Phase::kIdle;
      c.arm(first ? options_.header_timeout : options_.idle_timeout);
      auto [ec, n] = co_await c.socket.async_read_some(buffer.prepare(kFirstRead),
                                                       asio::as_tuple(asio::use_awaitable));
      c.disarm();
      if (ec) co_return;  // idle timeout, peer closed, drained: close silently
      buffer.commit(n);
    }
    first = false;
    c.phase = Phase::kReading;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options_.header_limit, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(options_.body_limit);
    // Note [Buffered requests]
    // A small request usually arrives whole with its first read: parse what
    // is buffered here, and await beast's reads only for what is missing.
    // Each async_read_header / async_read completes through a posted
    // handler even when it reads nothing, so this saves two scheduler round
    // trips per request. parser.put is the step those reads run on the
    // buffer, with the same limits and errors; header errors stay header
    // errors, and a body error (found only once the header is complete)
    // waits for the drain check after the header, as a read would.
    error_code hec, buffered_body_error;
    if (buffer.size() > 0) {
      parser.eager(false);
      buffer.consume(parser.put(buffer.data(), hec));
      if (hec == http::error::need_more) hec = {};
      if (!hec && parser.is_header_done() && !parser.is_done() && buffer.size() > 0) {
        parser.eager(true);
        while (!parser.is_done() && buffer.size() > 0) {
          const size_t used = parser.put(buffer.data(), buffered_body_error);
          buffer.consume(used);
          if (buffered_body_error == http::error::need_more) {
            buffered_body_error = {};
            break;  // a partial chunk: the read below brings the rest
          }
          if (buffered_body_error || used == 0) break;
        }
      }
    }
    if (!hec && !parser.is_header_done()) {
      c.arm(options_.header_timeout);
      auto [ec, n] = co_await http::async_read_header(c.socket, buffer, parser,
                                                      asio::as_tuple(asio::use_awaitable));
      c.disarm();
      hec = ec;
    }
    auto& req = parser.get();
    const unsigned version = req.version() == 10 ? 10 : 11;
    const std::string target(req.target());
    // "-" when the request line never arrived whole.
    std::string method(req.method_string());
    if (method.empty()) method = "-";
    if (hec) {
      co_await read_failed(c, method, target, version, hec, "header", options_.header_timeout);
      co_return;
    }
    const auto received = Clock::now();
    if (draining_.load()) {
      co_await write_error_and_close(c, method, path_of(target), 503, "the server is shutting down",
                                     version);
      co_return;
    }
    if (buffered_body_error) {
      co_await read_failed(c, method, target, version, buffered_body_error, "body",
                           options_.body_timeout);
      co_return;
    }
    if (!parser.is_done()) {
      const auto expect = req.find(http::field::expect);
      if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
        c.phase = Phase::kWriting;
        c.arm(options_.write_timeout);
        auto [wec, wn] = co_await asio::async_write(c.socket, asio::buffer(k100Continue),
                                                    asio::as_tuple(asio::use_awaitable));
        c.disarm();
        if (wec) co_return;
        c.phase = Phase::kReading;
      }
      c.arm(options_.body_timeout);
      auto [bec, bn] = co_await http::async_read(c.socket, buffer, parser,
                                                 asio::as_tuple(asio::use_awaitable));
      c.disarm();
      if (bec) {
        co_await read_failed(c, method, target, version, bec, "body", options_.body_timeout);
        co_return;
      }
    }
    if (c.aborted) co_return;

    HttpRequest request;
    request.method = method;
    request.target = target;
    request.path = path_of(target);
    if (const auto q = target.find('?'); q != std::string::npos) request.query = target.substr(q + 1);
    for (const auto& field : req)
      request.headers.emplace_back(lowercase(field.name_string()), std::string(field.value()));
    request.body = std::move(req.body());
    request.remote = c.remote;
    request.received = received;
    request.post = make_post(c.shared_from_this());
    const bool client_keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    const std::string path = request.path;

    // Hand it to the Handler and wait for Respond (Note [HTTP server]).
    c.phase = Phase::kHandling;
    c.response.reset();
    ++c.seq;
    RequestGuard guard(*this);
    auto slot = std::make_shared<ResponseSlot>();
    slot->connection = c.weak_from_this();
    slot->hub = hub_;
    slot->seq = c.seq;
    bool close_after = false;
    try {
      handler_(std::move(request), make_respond(slot));
    } catch (const std::exception& e) {
      log(std::string("handler threw: ") + e.what());
      close_after = true;
    } catch (...) {
      log("handler threw an unknown exception");
      close_after = true;
    }
    if (close_after && !slot->called.exchange(true))
      c.response = format_error(method, path, 500, "internal error: the request handler failed");
    while (!c.response && !c.aborted) {
      c.wake.expires_at(asio::steady_timer::time_point::max());
      co_await c.wake.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (c.aborted) co_return;
    guard.answered();
    HttpResponse response = std::move(*c.response);
    c.response.reset();
    for (const auto& [name, value] : response.headers)
      if (beast::iequals(name, "connection") && beast::iequals(value, "close")) close_after = true;
    const bool keep_alive = client_keep_alive && !close_after && !draining_.load();
    const bool written = co_await write_response(c, std::move(response), version, keep_alive, head);
    guard.written();
    if (!written) co_return;
    if (!keep_alive) {
      co_await linger_close(c);
      co_return;
    }
  }
}

namespace {

// The response head as text: status line, Server, Content-Type, the extra
// headers, Content-Length and Connection, in that order (Note [Response
// head]).
std::string response_head(const HttpResponse& r, int status, unsigned version, bool keep_alive,
                          bool bodiless) {
  // Note [Response head]
  // The head is written as one string next to the body (one gathered
  // write), not through beast's response fields and serializer: that cost
  // an allocation per field and a few thousand instructions per response.
  // It says what beast's message did: the status line with beast's reason
  // phrase, Content-Length for every status that has a body (and none for
  // 1xx, 204 and 304), "Connection: close" when the connection closes, and
  // "Connection: keep-alive" when an HTTP/1.0 connection stays open.
  std::string_view content_type;
  if (!r.content_type.empty() && sendable("content-type", r.content_type)) content_type = r.content_type;
  for (const auto& [name, value] : r.headers)
    if (sendable(name, value) && !reserved(name) && beast::iequals(name, "content-type"))
      content_type = value;  // the last one wins, as res.set did
  const std::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
  std::string head;
  head.reserve(128 + content_type.size() + reason.size() + 64 * r.headers.size());
  head += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  head += static_cast<char>('0' + status / 100);
  head += static_cast<char>('0' + status / 10 % 10);
  head += static_cast<char>('0' + status % 10);
  head += ' ';
  head += reason;
  head += "\r\nServer: fanin\r\n";
  if (!content_type.empty()) {
    head += "Content-Type: ";
    head += content_type;
    head += "\r\n";
  }
  for (const auto& [name, value] : r.headers) {
    if (!sendable(name, value) || reserved(name) || beast::iequals(name, "content-type")) continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (!bodiless) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof(digits), r.body.size()).ptr;
    head += "Content-Length: ";
    head.append(digits, end);
    head += "\r\n";
  }
  if (!keep_alive) head += "Connection: close\r\n";
  else if (version == 10) head += "Connection: keep-alive\r\n";
  head += "\r\n";
  return head;
}

}  // namespace

asio::awaitable<bool> HttpServer::Impl::write_response(Connection& c, HttpResponse r,
                                                       unsigned version, bool keep_alive,
                                                       bool head) {
  const int status = r.status >= 100 && r.status <= 999 ? r.status : 500;
  const bool bodiless = status < 200 || status == 204 || status == 304;
  const std::string text = response_head(r, status, version, keep_alive, bodiless);
  // HEAD: Content-Length still tells the GET's size, and no body follows.
  const size_t body_bytes = bodiless || head ? 0 : r.body.size();
  c.phase = Phase::kWriting;
  // Note [Direct write]
  // The socket is non-blocking (spawn_connection): a response that fits its
  // send buffer, as most do, goes out in this one write, with no timer and
  // no awaited operation (whose completion would be one more scheduler
  // round trip). What does not fit is awaited within write_timeout, as
  // before; an error closes the connection, as before.
  error_code wec;
  const size_t sent = c.socket.write_some(
      std::array<asio::const_buffer, 2>{asio::buffer(text), asio::buffer(r.body.data(), body_bytes)},
      wec);
  if (!wec && sent == text.size() + body_bytes) co_return !c.aborted;
  if (wec && wec != asio::error::would_block && wec != asio::error::try_again) co_return false;
  const size_t head_left = sent < text.size() ? text.size() - sent : 0;
  const size_t body_done = sent > text.size() ? sent - text.size() : 0;
  const std::array<asio::const_buffer, 2> rest{
      asio::buffer(text.data() + text.size() - head_left, head_left),
      asio::buffer(r.body.data() + body_done, body_bytes - body_done)};
  c.arm(options_.write_timeout);
  auto [ec, n] = co_await asio::async_write(c.socket, rest, asio::as_tuple(asio::use_awaitable));
  c.disarm();
  co_return !ec && !c.aborted;
}

asio::awaitable<void> HttpServer::Impl::write_error_and_close(Connection& c, std::string method,
                                                              std::string path, int status,
                                                              std::string message,
                                                              unsigned version) {
  HttpResponse r = format_error(method, path, status, message);
  if (co_await write_response(c, std::move(r), version, false, false)) co_await linger_close(c);
}

asio::awaitable<void> HttpServer::Impl::linger_close(Connection& c) {
  c.phase = Phase::kClosing;
  error_code ec;
  c.socket.shutdown(tcp::socket::shutdown_send, ec);
  if (!ec) {
    c.arm(kLingerTime);
    std::array<char, 4096> sink;
    size_t total = 0;
    while (total < kLingerBytes && !c.aborted) {
      auto [rec, n] = co_await c.socket.async_read_some(asio::buffer(sink),
                                                        asio::as_tuple(asio::use_awaitable));
      if (rec) break;
      total += n;
    }
    c.disarm();
  }
  c.socket.close(ec);
}

}  // namespace fanin::server
