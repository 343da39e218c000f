// http_sink: an HTTP/1.1 server that answers every request with one fixed,
// OpenAI-embeddings-shaped body (R rows of D floats), computing nothing.
// Pointed at by http_load, it gives the load generator's own ceiling on the
// machine of a run (how many requests/s the client can drive, and at what
// CPU cost), so a server figure near that ceiling is read as client-bound.
//
//   http_sink --port 0 --threads 4 --rows 1 --dim 384
// prints "http_sink: listening on http://127.0.0.1:PORT" on stderr.
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// The response as it goes on the wire, built once.
std::string make_response(int rows, int dim) {
  std::string body = "{\"object\":\"list\",\"data\":[";
  for (int r = 0; r < rows; ++r) {
    if (r) body += ',';
    body += "{\"object\":\"embedding\",\"index\":" + std::to_string(r) + ",\"embedding\":[";
    for (int d = 0; d < dim; ++d) {
      if (d) body += ',';
      body += "-0.012345678";  // the width of a typical float as servers print it
    }
    body += "]}";
  }
  body += "],\"model\":\"sink\",\"usage\":{\"prompt_tokens\":0,\"total_tokens\":0}}";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

asio::awaitable<void> serve(tcp::socket socket, const std::string& response) {
  beast::flat_buffer buffer;
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(uint64_t{64} << 20);
    auto [rerr, nr] = co_await http::async_read(socket, buffer, parser, kNoThrow);
    if (rerr) break;
    auto [werr, nw] = co_await asio::async_write(socket, asio::buffer(response), kNoThrow);
    if (werr || !parser.get().keep_alive()) break;
  }
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

// One acceptor per thread on the same port (SO_REUSEPORT), so the kernel
// spreads connections over threads and no io_context is shared.
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, const std::string& response) {
  while (true) {
    auto [err, socket] = co_await acceptor.async_accept(kNoThrow);
    if (err) {
      if (err == asio::error::operation_aborted) co_return;
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), response), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, threads = 2, rows = 1, dim = 384;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--port") port = v;
    else if (k == "--threads") threads = std::max(1, v);
    else if (k == "--rows") rows = std::max(1, v);
    else if (k == "--dim") dim = std::max(1, v);
    else {
      std::fprintf(stderr, "usage: http_sink [--port P] [--threads T] [--rows R] [--dim D]\n");
      return 2;
    }
  }
  const std::string response = make_response(rows, dim);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  try {
    for (int t = 0; t < threads; ++t) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      auto a = std::make_unique<tcp::acceptor>(*contexts.back());
      const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
      a->open(ep.protocol());
      a->set_option(asio::socket_base::reuse_address(true));
      int one = 1;
      ::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      a->bind(ep);
      a->listen(4096);
      // Port 0: the first acceptor picks one and the others join it.
      port = a->local_endpoint().port();
      asio::co_spawn(*contexts.back(), accept_loop(*a, response), asio::detached);
      acceptors.push_back(std::move(a));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_sink: %s\n", e.what());
    return 1;
  }
  asio::signal_set signals(*contexts.front(), SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) {
    for (auto& c : contexts) c->stop();
  });
  std::fprintf(stderr, "http_sink: listening on http://127.0.0.1:%d (%d threads, %zu-byte responses)\n",
               port, threads, response.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < contexts.size(); ++t) pool.emplace_back([&, t] { contexts[t]->run(); });
  contexts.front()->run();
  for (auto& c : contexts) c->stop();
  for (std::thread& t : pool) t.join();
  return 0;
}
