// server/http/server_impl.h: the insides of HttpServer, shared by
// http_server.cpp (listener, threads, shutdown) and connection.cpp (one
// coroutine per connection). Not a public header.
//
// Threads: every Connection field marked "own thread" is touched only on
// that connection's I/O thread (its coroutine, its timer handlers, the
// handlers that Respond and shutdown post to it; Note [No strands]).
// Respond reaches a connection only through post() under Hub::mu, so
// nothing is posted into a destroyed io_context.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "server/http/http_server.h"

namespace fanin::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
// Note [No strands]
// A connection's executor is its io_context's own, not a strand on it:
// each io_context is run by exactly one I/O thread (Note [One io_context per
// I/O thread]), so a connection's handlers never run at once already, and
// a strand would add a lock and a second queue hop to every completion (the
// reply posted by a worker, each timer cancel, each read). The shutdown
// thread runs the contexts only after every I/O thread has been joined.
using Executor = asio::io_context::executor_type;

// Lets a Respond called from any thread know whether the io_context still
// exists. Shared by the server and every Respond.
struct Hub {
  std::shared_mutex mu;  // guards open; held (shared) while posting into the io_context
  bool open = true;      // false once the io_context is about to be destroyed
};

// What a connection's coroutine is doing; decides what a drain or a
// deadline does to it.
enum class Phase { kIdle, kReading, kHandling, kWriting, kClosing };

// One accepted socket and the state its coroutine shares with timers and
// posted deliveries.
struct Connection : std::enable_shared_from_this<Connection> {
  Connection(Executor executor_in, tcp::socket socket_in, std::string remote_in)
      : executor(executor_in),
        socket(std::move(socket_in)),
        deadline(executor_in),
        wake(executor_in),
        remote(std::move(remote_in)) {}

  // Arms the deadline of the current phase: on expiry the socket's pending
  // operations are cancelled and timed_out is set. Own thread.
  void arm(std::chrono::milliseconds timeout);
  // Disarms the deadline. Own thread.
  void disarm();
  // Stores the response of request `seq` and wakes the coroutine. Own thread.
  void deliver(uint64_t seq, HttpResponse response);
  // Shutdown began: an idle connection closes now. Own thread.
  void on_drain();
  // Shutdown's drain time is over: close, abandon the request. Own thread.
  void abort();

  const Executor executor;     // immutable: this connection's I/O thread's context
  tcp::socket socket;          // own thread
  asio::steady_timer deadline;  // own thread: the current phase's timeout
  asio::steady_timer wake;     // own thread: the coroutine waits on it for a response
  const std::string remote;    // immutable: "address:port" of the peer
  Phase phase = Phase::kIdle;  // own thread
  uint64_t deadline_gen = 0;   // own thread: which arm() a firing deadline belongs to
  bool timed_out = false;      // own thread: the last armed deadline fired
  bool aborted = false;        // own thread: abort() ran; the coroutine stops
  uint64_t seq = 0;            // own thread: number of the request being handled
  std::optional<HttpResponse> response;  // own thread: the answer to request seq
};

// The state every copy of one request's Respond shares.
struct ResponseSlot {
  std::atomic<bool> called{false};  // the first call wins
  std::weak_ptr<Connection> connection;  // immutable after creation
  std::shared_ptr<Hub> hub;              // immutable after creation
  uint64_t seq = 0;                      // immutable after creation
};

struct HttpServer::Impl {
  Impl(HttpOptions options, Handler handler, ErrorFormatter errors);
  ~Impl();

  void start();
  bool shutdown(std::chrono::milliseconds drain_timeout);
  bool do_shutdown(std::chrono::milliseconds drain_timeout);
  bool wait();
  void on_signals(std::function<void(int)> on_signal);
  void arm_signals();
  bool on_io_thread() const;

  // One I/O thread's loop over its io_context (Note [I/O polling]).
  void run_io(asio::io_context& ioc);
  asio::awaitable<void> accept_loop();
  void spawn_connection(Executor executor, tcp::socket socket);
  // Posts fn(connection) to every open connection's thread.
  template <class Fn>
  void broadcast(Fn fn);

  // connection.cpp: the connection's coroutine and its pieces.
  asio::awaitable<void> session(std::shared_ptr<Connection> c, uint64_t id);
  asio::awaitable<void> serve(Connection& c);
  asio::awaitable<bool> write_response(Connection& c, HttpResponse response, unsigned version,
                                       bool keep_alive, bool head);
  asio::awaitable<void> write_error_and_close(Connection& c, std::string method, std::string path,
                                              int status, std::string message, unsigned version);
  // Answers a failed header or body read (408, 413, 431, 400) and closes, or
  // just returns when the client went away.
  asio::awaitable<void> read_failed(Connection& c, std::string method, std::string target,
                                    unsigned version,
                                    boost::system::error_code ec, std::string_view part,
                                    std::chrono::milliseconds timeout);
  asio::awaitable<void> linger_close(Connection& c);
  HttpResponse format_error(std::string_view method, std::string_view path, int status,
                            const std::string& message);
  // The Respond of one request: posts its response to the connection's thread.
  Respond make_respond(std::shared_ptr<ResponseSlot> slot);
  // HttpRequest::post of one request on connection `c`.
  std::function<void(std::function<void()>)> make_post(const std::shared_ptr<Connection>& c);
  // Posts fn, guarded (what it throws is logged), to `ex`. Under Hub::mu.
  template <class Executor>
  void post_guarded(const Executor& ex, std::function<void()> fn);

  // Counter changes that shutdown() waits for: wakes it while draining.
  void notify_stop_waiters();
  // Logs a line to stderr (the first kMaxLogLines, then one notice).
  void log(const std::string& line);

  const HttpOptions options_;
  const Handler handler_;
  const ErrorFormatter errors_;
  const std::shared_ptr<Hub> hub_ = std::make_shared<Hub>();

  // One io_context per I/O thread (Note [One io_context per I/O thread]):
  // made in the constructor, cleared only in ~Impl after the threads joined.
  std::vector<std::unique_ptr<asio::io_context>> iocs_;
  std::atomic<size_t> next_ioc_{0};  // round robin over iocs_ (next_context)
  asio::io_context& next_context();
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;  // start/shutdown caller
  std::unique_ptr<tcp::acceptor> acceptor_;  // acceptor's strand after start(); closed by shutdown
  std::vector<std::thread> threads_;         // written by start(), joined by do_shutdown()

  std::atomic<uint16_t> port_{0};
  std::atomic<size_t> connections_{0};  // open connections
  std::atomic<size_t> in_flight_{0};    // handed to the Handler, not yet answered
  std::atomic<size_t> busy_{0};         // handed to the Handler, response not yet written
  std::atomic<bool> draining_{false};   // shutdown() began
  std::atomic<int> log_lines_{0};

  std::mutex conns_mu_;  // guards conns_ and next_id_
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> conns_;
  uint64_t next_id_ = 0;

  enum class State { kIdle, kRunning, kStopping, kStopped };
  mutable std::mutex stop_mu_;  // guards state_, drained_, stopper_; stop_cv_ waits on it
  std::condition_variable stop_cv_;  // counters changed while draining, or state_ changed
  State state_ = State::kIdle;
  bool drained_ = true;
  std::thread stopper_;  // runs a shutdown begun on an I/O thread

  std::mutex signal_mu_;  // guards on_signal_ and signals_
  std::function<void(int)> on_signal_;
  std::unique_ptr<asio::signal_set> signals_;  // its own strand; cleared by shutdown
};

}  // namespace fanin::server
