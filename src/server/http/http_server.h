// server/http/http_server.h: a generic asynchronous HTTP/1.1 server core
// (Boost.Beast + Asio C++20 coroutines). It knows nothing about models or
// APIs: it parses requests, hands each complete one to a Handler, and writes
// the response the Handler gives back, whenever and from whatever thread it
// comes. Note [HTTP server] in docs/server.md explains the design.
//
// Contract:
// - A few I/O threads (HttpOptions::io_threads) run one coroutine per
//   connection; no thread per connection, so thousands of clients can wait
//   at once. The Handler, the ErrorFormatter and the on_signals callback run
//   on an I/O thread and must not block.
// - Requests of one connection are answered in order: the next request of a
//   keep-alive connection is read only after the previous response was
//   written. Requests of different connections are independent.
// - Respond may be called from any thread, at any time, exactly once (later
//   calls are ignored), also after the client went away or after the server
//   was destroyed: it then does nothing.
// - The server answers its own errors itself, through the ErrorFormatter,
//   and closes the connection: 400 malformed HTTP, 408 a header or body not
//   received within its timeout, 413 a body over body_limit (decided from
//   Content-Length before the body is read, or while reading a chunked one),
//   431 a header over header_limit, 500 a Handler that threw, 503 a request
//   that completes while the server drains. Nothing a client sends aborts
//   the process; no exception leaves an I/O thread.
// - start(), shutdown(), wait(), port(), connections(), in_flight() and
//   on_signals() may be called from any thread; start() once. shutdown() is
//   idempotent; called on an I/O thread it only begins the shutdown (see
//   there). wait() and the destructor (which shuts down with no drain time)
//   must not run on an I/O thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fanin::server {

using Clock = std::chrono::steady_clock;

// One complete request, as the Handler receives it.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target, "/v2/models/m/infer?x=1"
  std::string path;    // target before '?'
  std::string query;   // after '?' (may be empty)
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order
  std::string body;
  std::string remote;          // "127.0.0.1:51234"
  Clock::time_point received;  // when the header was complete
  // Runs fn on this request's connection's I/O thread (or another I/O
  // thread once the connection is gone): callable from any thread, cheap to
  // copy; fn is dropped once the server is destroyed. Work that ends in
  // Respond (formatting the reply) costs one thread hand-off this way
  // instead of two.
  std::function<void(std::function<void()>)> post;

  // The first value of the header with that (lowercase) name, or nullptr.
  const std::string* header(std::string_view lowercase_name) const;
};

// What the Handler answers. The server adds Content-Length, Server: fanin and
// Connection; extra headers named Content-Length, Transfer-Encoding, Server
// or Connection are dropped (Connection: close still closes after the
// response), as are headers whose name or value holds CR or LF.
struct HttpResponse {
  int status = 200;  // 100..999, else sent as 500
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
};

// Completes one request: callable from any thread, once (a second call is
// ignored), cheap to copy and move; after the client disconnected or the
// server was destroyed it does nothing.
using Respond = std::function<void(HttpResponse)>;

// Where to listen, and the limits and timeouts of every connection.
struct HttpOptions {
  std::string host = "127.0.0.1";  // an IP address (v4 or v6) or "localhost"
  uint16_t port = 8080;            // 0: an ephemeral port (port() tells which)
  int io_threads = 0;              // 0: half the hardware threads, 1..8
  // An I/O thread with nothing to do keeps polling its sockets and queue
  // this long before it sleeps in the kernel (Note [I/O polling] in
  // http_server.cpp): under load, a request or a reply posted to it is
  // picked up without a wake-up. 0: sleep at once.
  std::chrono::microseconds io_poll{0};
  size_t body_limit = 2 << 20;     // bytes; larger -> 413 before the body is read
  size_t header_limit = 16 << 10;  // request line + headers; larger -> 431
  // First byte of a request (or a new connection's wait for it) -> header
  // complete; past it: 408 and close (a connection that sent nothing closes
  // silently).
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};   // header -> body complete; past it: 408, close
  std::chrono::milliseconds idle_timeout{60000};   // keep-alive wait for the next request; close
  std::chrono::milliseconds write_timeout{30000};  // writing one response; past it: close
  size_t max_connections = 4096;  // beyond: accepted and closed at once
};

// The server. Thread safety: see the contract at the top of this file.
class HttpServer {
 public:
  // Called on an I/O thread for every complete request; must not block. It
  // calls respond now or later (from any thread), or stores it; the
  // connection stays open until respond is called. If it throws before
  // calling respond, the client gets a 500 and the connection closes.
  using Handler = std::function<void(HttpRequest&& request, Respond respond)>;
  // Formats the server's own errors (400, 408, 413, 431, 500, 503) in the
  // body shape of the API at `path`; called on an I/O thread, once per such
  // response (so it may also log or count it). `method` is the request's
  // ("-" when its header never arrived whole). The status of the result is
  // forced to `status`. Empty: a {"error": message} body.
  using ErrorFormatter = std::function<HttpResponse(
      std::string_view method, std::string_view path, int status, const std::string& message)>;

  // Makes a server that is not yet listening.
  HttpServer(HttpOptions options, Handler handler, ErrorFormatter errors);
  // Shuts down with no drain time and joins the I/O threads; never throws.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. Throws fanin::Error:
  // kUnavailable naming host:port and the OS error when bind or listen
  // fails, kInvalidArgument for an unparsable host or a second call.
  void start();

  // The bound port (after start()), 0 before.
  uint16_t port() const;

  // Calls on_signal(signo) on an I/O thread for each SIGINT and SIGTERM,
  // until shutdown; a second call replaces the callback. The callback may
  // call shutdown() (which then returns at once; wait() blocks until done).
  void on_signals(std::function<void(int)> on_signal);

  // Graceful stop: closes the listener (new connections are refused), closes
  // idle keep-alive connections, reads no new request (a request whose first
  // bytes had arrived and that completes while draining gets 503 with
  // Connection: close; pipelined requests not yet read are dropped with the
  // connection), writes the responses of received requests with
  // Connection: close, waits up to drain_timeout for all of them to be
  // answered and written, then closes what is left and stops the I/O
  // threads. Returns true when every received request was answered in time.
  // Idempotent: later and concurrent calls wait for the first and return its
  // result. Called on an I/O thread (from the Handler or on_signals), it
  // begins the same shutdown on a helper thread and returns false at once;
  // wait() then tells the result.
  bool shutdown(std::chrono::milliseconds drain_timeout);

  // Blocks until shutdown() has finished and returns its result (true:
  // drained); not on an I/O thread.
  bool wait();

  // Runs `fn` soon on one of the I/O threads (in no set order), e.g. to
  // format a response there rather than on the thread that produced its
  // data (an engine worker). Callable from any thread; dropped once the
  // server is destroyed. `fn` must not block; an exception it throws is
  // logged and dropped.
  void post(std::function<void()> fn);

  // Connections open now.
  size_t connections() const;
  // Requests handed to the Handler and not yet answered.
  size_t in_flight() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fanin::server
