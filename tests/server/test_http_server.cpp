// Tests of the HTTP server core (src/server/http) over real sockets on
// 127.0.0.1: keep-alive and pipelining, late responses from other threads,
// the server's own errors (400, 408, 413, 431, 500, 503), clients that go
// away, 1,024 concurrent connections on 2 I/O threads, and shutdown.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fanin/error.h"
#include "server/http/http_server.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using fanin::server::HttpOptions;
using fanin::server::HttpRequest;
using fanin::server::HttpResponse;
using fanin::server::HttpServer;
using fanin::server::Respond;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One response as the client saw it.
struct Reply {
  error_code ec;
  bool timed_out = false;
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A client of one connection. Connect and write are blocking (quick on
// 127.0.0.1); reads run on the shared io_context with a deadline, so a
// broken server fails a test instead of hanging it.
class Client {
 public:
  Client(asio::io_context& ioc, uint16_t port) : ioc_(ioc), socket_(ioc) {
    socket_.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), connect_error_);
  }

  const error_code& connect_error() const { return connect_error_; }

  void send(std::string_view bytes) {
    error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);
    ASSERT_FALSE(ec) << ec.message();
  }

  // Starts reading one response into *out; `done` is set when it completed.
  void async_receive(Reply* out, bool* done) {
    parser_.emplace();
    parser_->body_limit(64 << 20);
    http::async_read(socket_, buffer_, *parser_, [this, out, done](error_code ec, size_t) {
      out->ec = ec;
      if (!ec) {
        auto& res = parser_->get();
        out->status = static_cast<int>(res.result_int());
        for (const auto& f : res) {
          std::string name(f.name_string());
          for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          out->headers[name] = std::string(f.value());
        }
        out->body = res.body();
      }
      *done = true;
    });
  }

  // Reads one response, waiting at most `timeout`.
  Reply receive(std::chrono::milliseconds timeout = 5s) {
    Reply reply;
    bool done = false;
    async_receive(&reply, &done);
    reply.timed_out = !run_for(done, timeout);
    if (reply.timed_out) reply.ec = asio::error::timed_out;
    return reply;
  }

  // Waits up to `timeout` for the server to close the connection: true when
  // it did (end of stream or reset) without sending anything more.
  bool closed_by_server(std::chrono::milliseconds timeout = 5s) {
    char byte = 0;
    error_code result;
    bool done = false;
    socket_.async_read_some(asio::buffer(&byte, 1), [&](error_code ec, size_t) {
      result = ec;
      done = true;
    });
    if (!run_for(done, timeout)) return false;
    return result == asio::error::eof || result == asio::error::connection_reset;
  }

  // Reads raw bytes until `count` have come or `timeout` passed.
  std::string receive_raw(size_t count, std::chrono::milliseconds timeout = 5s) {
    std::string out(buffer_.size(), '\0');
    asio::buffer_copy(asio::buffer(out), buffer_.data());
    buffer_.consume(buffer_.size());
    while (out.size() < count) {
      char chunk[4096];
      size_t got = 0;
      bool done = false;
      socket_.async_read_some(asio::buffer(chunk, std::min(sizeof(chunk), count - out.size())),
                              [&](error_code ec, size_t n) {
                                got = ec ? 0 : n;
                                done = true;
                              });
      if (!run_for(done, timeout) || got == 0) break;
      out.append(chunk, got);
    }
    return out;
  }

  void close() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  // Runs the io_context until `done` or `timeout`; false on timeout (the
  // pending read is then cancelled).
  bool run_for(const bool& done, std::chrono::milliseconds timeout) {
    ioc_.restart();
    ioc_.run_for(timeout);
    if (done) return true;
    error_code ignored;
    socket_.cancel(ignored);
    ioc_.restart();
    ioc_.run();
    return false;
  }

  asio::io_context& ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  error_code connect_error_;
};

// Polls `condition` until it holds or `timeout` passed.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Error bodies that show the ErrorFormatter was used, with the path.
HttpResponse format_error(std::string_view /*method*/, std::string_view path, int status,
                          const std::string& message) {
  HttpResponse r;
  r.status = 599;  // the server forces `status`
  r.body = "{\"formatted\":" + std::to_string(status) + ",\"path\":\"" + std::string(path) +
           "\",\"message\":\"" + message + "\"}";
  return r;
}

// Answers "METHOD path query x-test|body" as text/plain, with extra headers.
void echo(HttpRequest&& request, Respond respond) {
  HttpResponse r;
  r.content_type = "text/plain";
  const std::string* x_test = request.header("x-test");
  r.body = request.method + " " + request.path + " " + request.query + " " +
           (x_test ? *x_test : std::string("-")) + "|" + request.body;
  r.headers = {{"X-Remote", request.remote}, {"X-Target", request.target}};
  respond(std::move(r));
}

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body, const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra + "\r\n" + body;
}

class HttpServerTest : public ::testing::Test {
 protected:
  static HttpOptions options() {
    HttpOptions o;
    o.port = 0;
    o.io_threads = 2;
    return o;
  }
  void start(HttpOptions o, HttpServer::Handler handler) {
    server_ = std::make_unique<HttpServer>(std::move(o), std::move(handler), format_error);
    server_->start();
    ASSERT_NE(server_->port(), 0);
  }
  std::unique_ptr<Client> connect() {
    auto c = std::make_unique<Client>(ioc_, server_->port());
    EXPECT_FALSE(c->connect_error()) << c->connect_error().message();
    return c;
  }

  int worker_load(HttpOptions o, int rounds);

  asio::io_context ioc_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveConnectionAnswersSeveralRequestsInOrder) {
  start(options(), echo);
  auto c = connect();
  for (int i = 0; i < 5; ++i) {
    const std::string body = "body-" + std::to_string(i);
    c->send(post("/echo?i=" + std::to_string(i), body, "X-Test: Value\r\n"));
    const Reply r = c->receive();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /echo i=" + std::to_string(i) + " Value|" + body);
    EXPECT_EQ(r.header("content-type"), "text/plain");
    EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
    EXPECT_EQ(r.header("server"), "fanin");
    EXPECT_EQ(r.header("x-target"), "/echo?i=" + std::to_string(i));
    EXPECT_EQ(r.header("x-remote").rfind("127.0.0.1:", 0), 0u) << r.header("x-remote");
    EXPECT_NE(r.header("connection"), "close");
  }
  // Two pipelined requests in one write: answered in order.
  c->send(get("/first") + get("/second"));
  EXPECT_EQ(c->receive().body, "GET /first  -|");
  EXPECT_EQ(c->receive().body, "GET /second  -|");
  EXPECT_EQ(server_->connections(), 1u);
}

// Note [Buffered requests]: whatever is buffered is parsed at once and the
// rest is read; a request cut anywhere (in the header, in the body, inside a
// chunk's size line) is read whole, and one that came with the previous
// request's bytes too.
TEST_F(HttpServerTest, RequestsCutAnywhereAreReadWhole) {
  start(options(), echo);
  auto c = connect();
  const std::string plain = post("/cut", "0123456789");
  const std::string chunked =
      "POST /chunks HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n";
  for (const std::string& request : {plain, chunked}) {
    const std::string want = request == plain ? "POST /cut  -|0123456789" : "POST /chunks  -|abcdefghij";
    for (size_t cut = 1; cut < request.size(); cut += 7) {
      c->send(request.substr(0, cut));
      std::this_thread::sleep_for(2ms);  // the server parses the first part alone
      c->send(request.substr(cut));
      const Reply r = c->receive();
      ASSERT_FALSE(r.ec) << r.ec.message() << " cut at " << cut;
      ASSERT_EQ(r.body, want) << "cut at " << cut;
    }
  }
  // The second request's first half rides with the first request.
  c->send(plain + chunked.substr(0, 60));
  EXPECT_EQ(c->receive().body, "POST /cut  -|0123456789");
  c->send(chunked.substr(60));
  EXPECT_EQ(c->receive().body, "POST /chunks  -|abcdefghij");
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(HttpServerTest, HandlerMayRespondLaterFromAnotherThread) {
  std::promise<Respond> held;
  start(options(), [&](HttpRequest&&, Respond respond) { held.set_value(std::move(respond)); });
  auto c = connect();
  c->send(get("/later"));
  auto future = held.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(server_->in_flight(), 1u);
  std::thread responder([respond = future.get()] {
    std::this_thread::sleep_for(20ms);
    HttpResponse r;
    r.body = "{\"late\":true}";
    respond(r);
    respond(HttpResponse{500, "text/plain", {}, "second call"});  // ignored
  });
  const Reply r = c->receive();
  responder.join();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"late\":true}");
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_TRUE(eventually([&] { return server_->in_flight() == 0; }));
}

TEST_F(HttpServerTest, ContentLengthOverBodyLimitGets413BeforeTheBodyIsSent) {
  std::atomic<int> calls{0};
  HttpOptions o = options();
  o.body_limit = 1024;
  start(o, [&](HttpRequest&& request, Respond respond) {
    ++calls;
    echo(std::move(request), std::move(respond));
  });
  auto c = connect();
  // Only the header of a 1 GB upload: the 413 must come without the body.
  c->send("POST /v1/embeddings HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000000\r\n\r\n");
  const Reply r = c->receive();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_NE(r.body.find("\"formatted\":413,\"path\":\"/v1/embeddings\""), std::string::npos) << r.body;
  EXPECT_TRUE(c->closed_by_server());
  EXPECT_EQ(calls.load(), 0);
}

TEST_F(HttpServerTest, ChunkedBodyOverLimitGets413) {
  HttpOptions o = options();
  o.body_limit = 1024;
  start(o, echo);
  auto c = connect();
  const std::string chunk(800, 'x');
  c->send("POST /embed HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" + chunk +
          "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n");
  const Reply r = c->receive();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.header("connection"), "close");
}

TEST_F(HttpServerTest, HeaderOverLimitGets431) {
  start(options(), echo);
  auto c = connect();
  c->send(get("/big", "X-Big: " + std::string(20 << 10, 'a') + "\r\n"));
  const Reply r = c->receive();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.header("connection"), "close");
}

TEST_F(HttpServerTest, GarbageGets400ThenCloseAndTheServerStillServes) {
  start(options(), echo);
  auto c = connect();
  c->send(std::string("\x16\x03\x01\x02\x00 not http at all\r\n\r\n", 25));
  const Reply r = c->receive();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("\"formatted\":400"), std::string::npos) << r.body;
  EXPECT_TRUE(c->closed_by_server());
  auto other = connect();
  other->send(get("/ok"));
  EXPECT_EQ(other->receive().status, 200);
}

TEST_F(HttpServerTest, SlowClientGets408AndCloseAfterHeaderTimeout) {
  HttpOptions o = options();
  o.header_timeout = 200ms;
  start(o, echo);
  auto c = connect();
  const auto t0 = Clock::now();
  c->send("GET /slow HTTP/1.1\r\nHost: te");  // half a header, then nothing
  const Reply r = c->receive(5s);
  const auto elapsed = Clock::now() - t0;
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c->closed_by_server(1s));
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 2s);
}

TEST_F(HttpServerTest, ClientGoneWhileInFlightThenRespondIsHarmless) {
  std::promise<Respond> held;
  std::atomic<bool> first{true};
  start(options(), [&](HttpRequest&& request, Respond respond) {
    if (first.exchange(false)) {
      held.set_value(std::move(respond));
    } else {
      echo(std::move(request), std::move(respond));
    }
  });
  auto gone = connect();
  gone->send(post("/hold", "payload"));
  auto future = held.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  gone->close();
  std::this_thread::sleep_for(20ms);
  std::thread([respond = future.get()] { respond(HttpResponse{200, "text/plain", {}, "too late"}); })
      .join();
  auto other = connect();
  other->send(get("/after"));
  const Reply r = other->receive();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /after  -|");
  // The first connection is freed once its response arrived.
  EXPECT_TRUE(eventually([&] { return server_->connections() == 1; })) << server_->connections();
  EXPECT_EQ(server_->in_flight(), 0u);
}

TEST_F(HttpServerTest, Holds1024ConcurrentKeepAliveConnectionsOnTwoIoThreads) {
  constexpr size_t kClients = 1024;
  const rlim_t needed = 2 * kClients + 256;  // both ends live in this process
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < needed) {
    if (limit.rlim_max < needed) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << limit.rlim_max << " < " << needed;
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) GTEST_SKIP() << "cannot raise RLIMIT_NOFILE to " << needed;
  }
  std::mutex mu;  // guards held
  std::vector<std::pair<std::string, Respond>> held;
  start(options(), [&](HttpRequest&& request, Respond respond) {
    std::lock_guard lock(mu);
    held.emplace_back(request.path, std::move(respond));
  });
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t i = 0; i < kClients; ++i) {
    clients.push_back(connect());
    ASSERT_FALSE(clients.back()->connect_error());
  }
  ASSERT_TRUE(eventually([&] { return server_->connections() == kClients; }, 20s))
      << server_->connections();
  for (size_t i = 0; i < kClients; ++i) clients[i]->send(get("/c/" + std::to_string(i)));
  // Every client waits in the handler at once: what the batch queue needs.
  ASSERT_TRUE(eventually([&] { return server_->in_flight() == kClients; }, 20s)) << server_->in_flight();
  {
    std::lock_guard lock(mu);
    for (auto& [path, respond] : held) respond(HttpResponse{200, "text/plain", {}, path});
  }
  std::vector<Reply> replies(kClients);
  std::unique_ptr<bool[]> done(new bool[kClients]());
  for (size_t i = 0; i < kClients; ++i) clients[i]->async_receive(&replies[i], &done[i]);
  ioc_.restart();
  ioc_.run_for(20s);
  size_t answered = 0;
  for (size_t i = 0; i < kClients; ++i)
    if (done[i] && !replies[i].ec && replies[i].status == 200 && replies[i].body == "/c/" + std::to_string(i))
      ++answered;
  EXPECT_EQ(answered, kClients);
  EXPECT_EQ(server_->connections(), kClients);  // still alive: keep-alive
  EXPECT_EQ(server_->in_flight(), 0u);
  for (auto& c : clients) c->close();
  ioc_.restart();
  ioc_.run();  // cancelled reads, if any, complete
  EXPECT_TRUE(eventually([&] { return server_->connections() == 0; }, 10s)) << server_->connections();
}

// The app's reply path under load (run under ThreadSanitizer by the tsan
// preset): three worker threads take the requests, and each answers either
// itself (Respond posts to the connection's I/O thread) or through
// request.post on that thread (Respond then delivers at once): 32
// keep-alive clients x `rounds` requests. Returns how many answers came
// back to their own request.
int HttpServerTest::worker_load(HttpOptions o, int rounds) {
  std::mutex mu;  // guards jobs and stop
  std::condition_variable cv;
  std::deque<std::function<void()>> jobs;
  bool stop = false;
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w)
    workers.emplace_back([&] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return stop || !jobs.empty(); });
          if (jobs.empty()) return;
          job = std::move(jobs.front());
          jobs.pop_front();
        }
        job();
      }
    });
  std::atomic<uint64_t> n{0};
  start(std::move(o), [&](HttpRequest&& request, Respond respond) {
    const bool via_post = n.fetch_add(1) % 2 == 0;
    auto job = [path = request.path, post = request.post, respond = std::move(respond), via_post] {
      auto reply = [path, respond] { respond(HttpResponse{200, "text/plain", {}, path}); };
      if (via_post) post(reply);
      else reply();
    };
    {
      std::lock_guard lock(mu);
      jobs.push_back(std::move(job));
    }
    cv.notify_one();
  });
  constexpr int kClients = 32;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(connect());
  int answered = 0;
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < kClients; ++i) clients[i]->send(get("/c" + std::to_string(i) + "/" + std::to_string(r)));
    std::vector<Reply> replies(kClients);
    std::unique_ptr<bool[]> done(new bool[kClients]());
    for (int i = 0; i < kClients; ++i) clients[i]->async_receive(&replies[i], &done[i]);
    ioc_.restart();
    ioc_.run_for(20s);
    for (int i = 0; i < kClients; ++i)
      answered += done[i] && !replies[i].ec &&
                  replies[i].body == "/c" + std::to_string(i) + "/" + std::to_string(r);
  }
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : workers) t.join();
  EXPECT_EQ(server_->in_flight(), 0u);
  return answered;
}

TEST_F(HttpServerTest, RepliesFromWorkersAndFromTheConnectionsThreadUnderLoad) {
  EXPECT_EQ(worker_load(options(), 40), 32 * 40);
}

// Note [I/O polling]: I/O threads that poll before they sleep answer the
// same load, sleep once idle past the window and wake for the next
// request, and shut down (the poll loop sees the stopped context).
TEST_F(HttpServerTest, PollingIoThreadsServeSleepWakeAndShutDown) {
  HttpOptions o = options();
  o.io_poll = std::chrono::microseconds(2000);
  EXPECT_EQ(worker_load(o, 20), 32 * 20);
  auto t0 = Clock::now();
  EXPECT_TRUE(server_->shutdown(2s));  // the handler's workers are gone: stop before them
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(server_->connections(), 0u);
  start(o, echo);
  auto c = connect();
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(20ms);  // past the window: the threads sleep
    c->send(get("/after-sleep-" + std::to_string(i)));
    const Reply r = c->receive();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "GET /after-sleep-" + std::to_string(i) + "  -|");
  }
  t0 = Clock::now();
  EXPECT_TRUE(server_->shutdown(2s));
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(HttpServerTest, ShutdownAnswersInFlightRequestsAndRefusesNewConnections) {
  std::mutex mu;  // guards held
  std::vector<Respond> held;
  start(options(), [&](HttpRequest&& request, Respond respond) {
    if (request.path == "/hold") {
      std::lock_guard lock(mu);
      held.push_back(std::move(respond));
    } else {
      echo(std::move(request), std::move(respond));
    }
  });
  auto a = connect();
  auto b = connect();
  auto idle = connect();
  auto partial = connect();
  idle->send(get("/now"));
  ASSERT_EQ(idle->receive().status, 200);
  a->send(get("/hold"));
  b->send(post("/hold", "x"));
  partial->send("POST /late HTTP/1.1\r\nHost: test\r\n");  // its header completes while draining
  ASSERT_TRUE(eventually([&] { return server_->in_flight() == 2; }));
  std::this_thread::sleep_for(100ms);  // the server has read partial's first bytes
  const uint16_t port = server_->port();
  std::promise<bool> drained;
  std::thread stopper([&] { drained.set_value(server_->shutdown(5s)); });
  // Idle keep-alive connections close at once.
  EXPECT_TRUE(idle->closed_by_server(2s));
  // A request that completes while draining gets 503 and a close.
  partial->send("Content-Length: 0\r\n\r\n");
  const Reply rejected = partial->receive();
  EXPECT_EQ(rejected.status, 503);
  EXPECT_EQ(rejected.header("connection"), "close");
  EXPECT_NE(rejected.body.find("\"formatted\":503"), std::string::npos) << rejected.body;
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(held.size(), 2u);
    for (auto& respond : held) respond(HttpResponse{200, "text/plain", {}, "drained"});
  }
  for (Client* c : {a.get(), b.get()}) {
    const Reply r = c->receive();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "drained");
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c->closed_by_server());
  }
  stopper.join();
  EXPECT_TRUE(drained.get_future().get());
  EXPECT_TRUE(server_->wait());
  EXPECT_TRUE(server_->shutdown(0ms));  // idempotent
  EXPECT_EQ(server_->connections(), 0u);
  Client refused(ioc_, port);
  EXPECT_EQ(refused.connect_error(), asio::error::connection_refused) << refused.connect_error().message();
}

TEST_F(HttpServerTest, ShutdownGivesUpOnAnUnansweredRequestAfterTheDrainTimeout) {
  std::promise<Respond> held;
  start(options(), [&](HttpRequest&&, Respond respond) { held.set_value(std::move(respond)); });
  auto c = connect();
  c->send(get("/never"));
  auto future = held.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  const auto t0 = Clock::now();
  EXPECT_FALSE(server_->shutdown(200ms));
  const auto elapsed = Clock::now() - t0;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_TRUE(c->closed_by_server(1s));
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_EQ(server_->in_flight(), 0u);
  server_.reset();
  future.get()(HttpResponse{});  // after the server is gone: does nothing
}

// The response head byte for byte (connection.cpp writes it as text, Note
// [Response head]): status line with the reason phrase, Server, Content-Type
// (an extra header of that name replaces it), the extra headers that may be
// sent, Content-Length, Connection; none for 204, HEAD without the body.
TEST_F(HttpServerTest, ResponseHeadSaysWhatTheResponseIs) {
  start(options(), [](HttpRequest&& request, Respond respond) {
    HttpResponse r;
    r.content_type = "text/plain";
    r.body = "hello";
    if (request.path == "/204") r.status = 204;
    if (request.path == "/287") r.status = 287;
    if (request.path == "/headers")
      r.headers = {{"X-One", "1"},         {"Content-Type", "application/x-test"},
                   {"Server", "other"},    {"Content-Length", "99"},
                   {"X-Bad", "a\r\nb: c"}, {"x-two", "2"}};
    respond(std::move(r));
  });
  auto c = connect();
  c->send(get("/plain"));
  EXPECT_EQ(c->receive_raw(84),
            "HTTP/1.1 200 OK\r\nServer: fanin\r\nContent-Type: text/plain\r\n"
            "Content-Length: 5\r\n\r\nhello");
  c->send(get("/headers"));
  EXPECT_EQ(c->receive_raw(112),
            "HTTP/1.1 200 OK\r\nServer: fanin\r\nContent-Type: application/x-test\r\n"
            "X-One: 1\r\nx-two: 2\r\nContent-Length: 5\r\n\r\nhello");
  c->send(get("/204"));
  EXPECT_EQ(c->receive_raw(68),
            "HTTP/1.1 204 No Content\r\nServer: fanin\r\nContent-Type: text/plain\r\n\r\n");
  c->send(get("/287"));
  EXPECT_EQ(c->receive_raw(98),
            "HTTP/1.1 287 <unknown-status>\r\nServer: fanin\r\nContent-Type: text/plain\r\n"
            "Content-Length: 5\r\n\r\nhello");
  c->send("HEAD /plain HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(c->receive_raw(79),
            "HTTP/1.1 200 OK\r\nServer: fanin\r\nContent-Type: text/plain\r\n"
            "Content-Length: 5\r\n\r\n");
  c->send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(c->receive_raw(108),
            "HTTP/1.0 200 OK\r\nServer: fanin\r\nContent-Type: text/plain\r\n"
            "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
  c->send("GET /last HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(c->receive_raw(103),
            "HTTP/1.1 200 OK\r\nServer: fanin\r\nContent-Type: text/plain\r\n"
            "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_TRUE(c->closed_by_server());
}

// Note [Direct write]: a response larger than the socket's send buffer goes
// out partly at once and the rest awaited; small ones after it still come
// whole and in order.
TEST_F(HttpServerTest, ResponsesLargerThanTheSendBufferComeWhole) {
  std::string big(24 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  start(options(), [&big](HttpRequest&& request, Respond respond) {
    HttpResponse r;
    r.content_type = "text/plain";
    r.body = request.path == "/big" ? big : "small";
    respond(std::move(r));
  });
  auto c = connect();
  for (int i = 0; i < 2; ++i) {
    c->send(get("/big") + get("/small"));
    const Reply r = c->receive(20s);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.body.size(), big.size());
    EXPECT_TRUE(r.body == big);
    EXPECT_EQ(c->receive().body, "small");
  }
}

TEST_F(HttpServerTest, Http10WithoutKeepAliveClosesAfterTheResponse) {
  start(options(), echo);
  auto c = connect();
  c->send("GET /old HTTP/1.0\r\n\r\n");
  const Reply r = c->receive();
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /old  -|");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c->closed_by_server());
}

TEST_F(HttpServerTest, ExpectContinueGets100BeforeTheBody) {
  start(options(), echo);
  auto c = connect();
  c->send("POST /up HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(c->receive().status, 100);
  c->send("hello");
  const Reply r = c->receive();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /up  -|hello");
}

TEST_F(HttpServerTest, HandlerExceptionGets500AndTheServerKeepsServing) {
  start(options(), [](HttpRequest&& request, Respond respond) {
    if (request.path == "/throw") throw std::runtime_error("handler bug");
    echo(std::move(request), std::move(respond));
  });
  auto c = connect();
  c->send(get("/throw"));
  const Reply r = c->receive();
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("\"formatted\":500,\"path\":\"/throw\""), std::string::npos) << r.body;
  EXPECT_EQ(r.header("connection"), "close");
  auto other = connect();
  other->send(get("/fine"));
  EXPECT_EQ(other->receive().status, 200);
}

TEST_F(HttpServerTest, StartFailsNamingHostAndPortWhenThePortIsTaken) {
  start(options(), echo);
  HttpOptions o = options();
  o.port = server_->port();
  HttpServer second(o, echo, format_error);
  try {
    second.start();
    FAIL() << "start() on a taken port did not throw";
  } catch (const fanin::Error& e) {
    EXPECT_EQ(e.code(), fanin::ErrorCode::kUnavailable);
    EXPECT_NE(e.message().find("127.0.0.1:" + std::to_string(o.port)), std::string::npos) << e.message();
  }
  HttpOptions bad = options();
  bad.host = "not-an-address";
  HttpServer third(bad, echo, format_error);
  try {
    third.start();
    FAIL() << "start() with a bad host did not throw";
  } catch (const fanin::Error& e) {
    EXPECT_EQ(e.code(), fanin::ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("not-an-address"), std::string::npos) << e.message();
  }
}

TEST_F(HttpServerTest, SignalCallbackMayShutDownTheServer) {
  start(options(), echo);
  std::atomic<int> signalled{0};
  server_->on_signals([&](int signo) {
    signalled = signo;
    EXPECT_FALSE(server_->shutdown(1s));  // on an I/O thread: begins, returns at once
  });
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_TRUE(server_->wait());
  EXPECT_EQ(signalled.load(), SIGTERM);
  EXPECT_EQ(server_->connections(), 0u);
}

}  // namespace
