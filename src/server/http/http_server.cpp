// server/http/http_server.cpp: the listener, the I/O threads, signals and
// shutdown of HttpServer (connection.cpp holds the per-connection
// coroutine). Note [HTTP server] in docs/server.md.
#include "server/http/http_server.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#if defined(__linux__)
#include <pthread.h>
#endif

#include "fanin/error.h"
#include "server/http/server_impl.h"

namespace fanin::server {

namespace {

constexpr int kMaxLogLines = 50;
// How long shutdown waits for aborted connections' coroutines to finish
// before stopping the threads anyway (they are then closed directly).
constexpr std::chrono::milliseconds kAbortGrace{1000};
// Pause after an accept error such as EMFILE, so the acceptor does not spin.
constexpr std::chrono::milliseconds kAcceptBackoff{50};

// HttpOptions::io_threads = 0: half the hardware threads, 1 to 8 (the other
// half is left to the engine: tokenization, the CPU backend's workers).
unsigned default_io_threads() {
  return std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u);
}

// The server whose I/O thread this is, or nullptr.
thread_local const HttpServer::Impl* tls_io_server = nullptr;

std::string endpoint_string(const tcp::endpoint& e) {
  const auto address = e.address();
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(e.port());
}

}  // namespace

const std::string* HttpRequest::header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers)
    if (name == lowercase_name) return &value;
  return nullptr;
}

HttpServer::Impl::Impl(HttpOptions options, Handler handler, ErrorFormatter errors)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      errors_(std::move(errors)) {
  // Note [One io_context per I/O thread]
  // Each I/O thread runs its own io_context (concurrency hint 1) and a
  // connection lives on one of them, chosen round robin at accept: its
  // reads, writes, phase timers and deliveries touch only that context's
  // scheduler and reactor. With one io_context shared by every thread, each
  // request's dozen scheduler and timer operations took the same two
  // mutexes from every thread, and the server stopped scaling at about 32k
  // requests/s whatever the thread count (bench/results/2026-12-02-serve-shared-ioc.json).
  // Posts from other threads (Respond, HttpServer::post) stay thread-safe.
  const unsigned n = options_.io_threads > 0 ? static_cast<unsigned>(options_.io_threads)
                                              : default_io_threads();
  for (unsigned i = 0; i < n; ++i) iocs_.push_back(std::make_unique<asio::io_context>(1));
}

asio::io_context& HttpServer::Impl::next_context() {
  return *iocs_[next_ioc_.fetch_add(1, std::memory_order_relaxed) % iocs_.size()];
}

HttpServer::Impl::~Impl() {
  try {
    shutdown(std::chrono::milliseconds(0));
    std::thread stopper;
    {
      std::lock_guard lock(stop_mu_);
      stopper.swap(stopper_);
    }
    if (stopper.joinable()) stopper.join();
  } catch (...) {
    // Nothing to report from a destructor; the steps below still run.
  }
  {
    std::unique_lock lock(hub_->mu);
    hub_->open = false;  // no Respond posts from now on
  }
  signals_.reset();
  acceptor_.reset();
  work_.clear();
  iocs_.clear();  // destroys what is still queued (posted deliveries)
}

bool HttpServer::Impl::on_io_thread() const { return tls_io_server == this; }

void HttpServer::Impl::log(const std::string& line) {
  const int n = log_lines_.fetch_add(1, std::memory_order_relaxed);
  if (n < kMaxLogLines) {
    std::fprintf(stderr, "fanin serve: %s\n", line.c_str());
  } else if (n == kMaxLogLines) {
    std::fprintf(stderr, "fanin serve: further errors not logged\n");
  }
}

void HttpServer::Impl::notify_stop_waiters() {
  if (!draining_.load()) return;
  std::lock_guard lock(stop_mu_);
  stop_cv_.notify_all();
}

void HttpServer::Impl::start() {
  // Held throughout, so that a concurrent shutdown() sees either no server
  // or a complete one.
  std::lock_guard lock(stop_mu_);
  if (state_ != State::kIdle)
    throw Error(ErrorCode::kInvalidArgument,
                "[HttpServer::start] called twice, or after shutdown()");
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  boost::system::error_code ec;
  asio::ip::address address;
  if (options_.host == "localhost") {
    address = asio::ip::address_v4::loopback();
  } else {
    address = asio::ip::make_address(options_.host, ec);
    if (ec)
      throw Error(ErrorCode::kInvalidArgument,
                  "[HttpServer::start] host '" + options_.host + "' is not an IP address");
  }
  const tcp::endpoint endpoint(address, options_.port);
  auto acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(*iocs_[0]));
  auto fail = [&](const char* step) {
    throw Error(ErrorCode::kUnavailable,
                std::string("[HttpServer::start] cannot ") + step + " " + where + ": " + ec.message());
  };
  acceptor->open(endpoint.protocol(), ec);
  if (ec) fail("open a socket for");
  acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) fail("configure");
  acceptor->bind(endpoint, ec);
  if (ec) fail("bind");
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
  port_ = acceptor->local_endpoint(ec).port();
  acceptor_ = std::move(acceptor);

  for (auto& ioc : iocs_) work_.push_back(asio::make_work_guard(*ioc));
  asio::co_spawn(acceptor_->get_executor(), accept_loop(), [this](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      log(std::string("acceptor stopped: ") + x.what());
    } catch (...) {
      log("acceptor stopped: unknown exception");
    }
  });
  state_ = State::kRunning;
  for (size_t i = 0; i < iocs_.size(); ++i) {
    threads_.emplace_back([this, ioc = iocs_[i].get(), i] {
      tls_io_server = this;
#if defined(__linux__)
      // fanin-io-N in top -H and /proc/<pid>/task/*/comm (CPU per thread group).
      const std::string name = "fanin-io-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
#endif
      for (;;) {
        try {
          run_io(*ioc);
          return;
        } catch (const std::exception& e) {
          log(std::string("I/O thread caught: ") + e.what());
        } catch (...) {
          log("I/O thread caught an unknown exception");
        }
      }
    });
  }
}

// Note [I/O polling]
// With HttpOptions::io_poll = 0 an I/O thread is io_context::run(): when
// its queue is empty it sleeps in epoll_wait, and the next request's bytes
// or an engine worker's posted reply wake it through the kernel, a
// scheduler wake-up of tens of microseconds on a virtual machine, paid
// twice a request (request in, reply out). With io_poll > 0 an idle thread
// first runs poll() (ready handlers, then a non-blocking epoll_wait) in a
// loop for up to io_poll since it last found work, and sleeps in run_one()
// only after that: a steady load never sleeps, at the price of the
// thread's core while it polls; a quiet server sleeps as before.
void HttpServer::Impl::run_io(asio::io_context& ioc) {
  if (options_.io_poll <= std::chrono::microseconds(0)) {
    ioc.run();
    return;
  }
  const auto window = options_.io_poll;
  auto last_work = Clock::now();
  while (!ioc.stopped()) {
    if (ioc.poll() > 0) {
      last_work = Clock::now();
      continue;
    }
    if (Clock::now() - last_work < window) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    if (ioc.run_one() == 0) return;  // stopped, or out of work
    last_work = Clock::now();
  }
}

asio::awaitable<void> HttpServer::Impl::accept_loop() {
  asio::steady_timer backoff(co_await asio::this_coro::executor);
  bool logged_full = false;
  for (;;) {
    Executor executor = next_context().get_executor();
    tcp::socket socket(executor);
    auto [ec] = co_await acceptor_->async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (draining_.load() || !acceptor_->is_open() || ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      log("accept failed: " + ec.message());
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (connections_.load() >= options_.max_connections) {
      if (!logged_full) {
        log("max_connections (" + std::to_string(options_.max_connections) +
            ") reached: closing new connections");
        logged_full = true;
      }
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    spawn_connection(executor, std::move(socket));
  }
}

void HttpServer::Impl::spawn_connection(Executor executor, tcp::socket socket) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  // Synchronous writes return would_block instead of waiting (Note [Direct
  // write] in connection.cpp); the awaited operations are unaffected.
  socket.non_blocking(true, ec);
  const auto peer = socket.remote_endpoint(ec);
  auto c = std::make_shared<Connection>(executor, std::move(socket),
                                        ec ? std::string("unknown") : endpoint_string(peer));
  uint64_t id = 0;
  {
    std::lock_guard lock(conns_mu_);
    id = next_id_++;
    conns_.emplace(id, c);
  }
  connections_.fetch_add(1);
  asio::co_spawn(executor, session(std::move(c), id), [this](std::exception_ptr e) {
    if (e) log("a connection's coroutine failed");
  });
}

template <class Fn>
void HttpServer::Impl::broadcast(Fn fn) {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(conns_mu_);
    open.reserve(conns_.size());
    for (auto& [id, weak] : conns_)
      if (auto c = weak.lock()) open.push_back(std::move(c));
  }
  for (auto& c : open) asio::post(c->executor, [c, fn] { fn(*c); });
}

void HttpServer::Impl::on_signals(std::function<void(int)> on_signal) {
  std::lock_guard lock(signal_mu_);
  on_signal_ = std::move(on_signal);
  if (signals_ || draining_.load()) return;
  signals_ = std::make_unique<asio::signal_set>(asio::make_strand(*iocs_[0]), SIGINT, SIGTERM);
  arm_signals();
}

// Waits for the next signal; called with signal_mu_ held or on the signal
// set's strand.
void HttpServer::Impl::arm_signals() {
  signals_->async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;  // cancelled by shutdown
    std::function<void(int)> callback;
    {
      std::lock_guard lock(signal_mu_);
      callback = on_signal_;
    }
    try {
      if (callback) callback(signo);
    } catch (const std::exception& e) {
      log(std::string("on_signals callback threw: ") + e.what());
    } catch (...) {
      log("on_signals callback threw");
    }
    std::lock_guard lock(signal_mu_);
    if (signals_ && !draining_.load()) arm_signals();
  });
}

bool HttpServer::Impl::shutdown(std::chrono::milliseconds drain_timeout) {
  std::unique_lock lock(stop_mu_);
  switch (state_) {
    case State::kIdle:
      state_ = State::kStopped;
      stop_cv_.notify_all();
      return drained_;
    case State::kStopped:
      return drained_;
    case State::kStopping:
      if (on_io_thread()) return false;
      stop_cv_.wait(lock, [&] { return state_ == State::kStopped; });
      return drained_;
    case State::kRunning:
      break;
  }
  state_ = State::kStopping;
  if (on_io_thread()) {
    // Waiting here would hold an I/O thread that the drain needs, and
    // joining it from itself cannot work: a helper thread does it.
    stopper_ = std::thread([this, drain_timeout] {
      const bool drained = do_shutdown(drain_timeout);
      std::lock_guard done(stop_mu_);
      drained_ = drained;
      state_ = State::kStopped;
      stop_cv_.notify_all();
    });
    return false;
  }
  lock.unlock();
  const bool drained = do_shutdown(drain_timeout);
  lock.lock();
  drained_ = drained;
  state_ = State::kStopped;
  stop_cv_.notify_all();
  return drained;
}

bool HttpServer::Impl::do_shutdown(std::chrono::milliseconds drain_timeout) {
  const auto deadline = Clock::now() + drain_timeout;
  draining_.store(true);
  asio::post(acceptor_->get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  });
  {
    std::lock_guard lock(signal_mu_);
    if (signals_) {
      asio::post(signals_->get_executor(), [this] {
        std::lock_guard inner(signal_mu_);
        boost::system::error_code ignored;
        signals_->cancel(ignored);
      });
    }
  }
  broadcast([](Connection& c) { c.on_drain(); });
  bool drained = false;
  {
    std::unique_lock lock(stop_mu_);
    drained = stop_cv_.wait_until(lock, deadline, [&] { return busy_.load() == 0; });
  }
  broadcast([](Connection& c) { c.abort(); });
  {
    std::unique_lock lock(stop_mu_);
    stop_cv_.wait_for(lock, kAbortGrace, [&] { return connections_.load() == 0; });
  }
  work_.clear();
  for (auto& ioc : iocs_) ioc->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // No I/O thread runs from here on: this thread may touch every object.
  boost::system::error_code ignored;
  acceptor_->close(ignored);
  {
    std::lock_guard lock(signal_mu_);
    if (signals_) {
      signals_->clear(ignored);  // restores the default SIGINT/SIGTERM actions
      signals_->cancel(ignored);
    }
  }
  {
    std::lock_guard lock(conns_mu_);
    for (auto& [id, weak] : conns_) {
      if (auto c = weak.lock()) {
        c->aborted = true;
        c->socket.close(ignored);
        c->deadline.cancel();
        c->wake.cancel();
      }
    }
  }
  // Let the coroutines see their cancelled operations and finish, so that
  // connections() drops to 0 and their sockets are freed now.
  try {
    for (auto& ioc : iocs_) {
      ioc->restart();
      ioc->poll();
    }
  } catch (const std::exception& e) {
    log(std::string("shutdown: ") + e.what());
  }
  return drained;
}

bool HttpServer::Impl::wait() {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait(lock, [&] { return state_ == State::kStopped; });
  return drained_;
}

HttpServer::HttpServer(HttpOptions options, Handler handler, ErrorFormatter errors)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(errors))) {}

HttpServer::~HttpServer() = default;

void HttpServer::start() { impl_->start(); }

uint16_t HttpServer::port() const { return impl_->port_.load(); }

void HttpServer::on_signals(std::function<void(int)> on_signal) {
  impl_->on_signals(std::move(on_signal));
}

bool HttpServer::shutdown(std::chrono::milliseconds drain_timeout) {
  return impl_->shutdown(drain_timeout);
}

bool HttpServer::wait() { return impl_->wait(); }

template <class Executor>
void HttpServer::Impl::post_guarded(const Executor& ex, std::function<void()> fn) {
  asio::post(ex, [this, fn = std::move(fn)] {
    try {
      fn();
    } catch (const std::exception& e) {
      log(std::string("posted work threw: ") + e.what());
    } catch (...) {
      log("posted work threw");
    }
  });
}
template void HttpServer::Impl::post_guarded(const Executor&, std::function<void()>);

void HttpServer::post(std::function<void()> fn) {
  std::shared_lock lock(impl_->hub_->mu);
  if (!impl_->hub_->open || impl_->iocs_.empty()) return;  // the server is gone
  impl_->post_guarded(impl_->next_context().get_executor(), std::move(fn));
}

size_t HttpServer::connections() const { return impl_->connections_.load(); }

size_t HttpServer::in_flight() const { return impl_->in_flight_.load(); }

}  // namespace fanin::server
