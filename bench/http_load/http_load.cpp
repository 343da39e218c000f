// http_load: a closed-loop HTTP load generator for `fanin serve` and its
// peers (Infinity, TEI), so the server benchmark measures the server and not
// the client.
//
// C keep-alive connections, each sending one request, reading the whole
// response, then sending the next, for a warm-up and then a measured
// duration. Connections are Asio coroutines spread over T I/O threads, each
// thread with its own io_context: no lock is shared between threads on the
// hot path, and a thousand connections cost a thousand small coroutine
// frames rather than a thousand threads. Request bytes (head and body) are
// built once per sentence offset before the run, so sending one is a single
// write of a prebuilt buffer. Every response's latency is kept, so the
// percentiles are exact (nearest rank over all samples of the measured
// window), and the generator reports its own CPU use (getrusage over the
// measured window): cores_used well under the thread count means the client
// was not the bound.
//
// Errors are counted, never fatal: a refused connection waits 10 ms and
// retries, a reset or a server close reconnects, a request past --timeout
// counts as a timeout and reconnects.
//
// Prints one JSON object on stdout; progress goes to stderr.
//
//   http_load --url http://127.0.0.1:8080 --api openai --connections 256
//       --inputs 1 --warmup 2 --duration 10 --threads 2
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

// Completion token that returns (error_code, ...) instead of throwing, so a
// reset costs a branch, not an exception per failed operation.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// How long after the measured window an in-flight request may still finish
// before its connection is closed: bounds the shutdown of a stuck run.
constexpr auto kGrace = std::chrono::seconds(2);
// Pause after a failed connect, so a server that is down is not spun on.
constexpr auto kReconnectPause = std::chrono::milliseconds(10);
// Bytes each connection can take in one recv.
constexpr size_t kReadBuffer = 64 * 1024;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string url = "http://127.0.0.1:8080";
  std::string api = "openai";  // openai | tei | v2
  std::string encoding = "float";  // openai: float | base64
  std::string model = "all-MiniLM-L6-v2";  // openai body's "model"
  std::string v2_model = "minilm";  // v2 route's model name
  std::string path;  // route; empty: the api's default
  std::string sentences = "bench/data/queue_sentences.txt";
  std::string label;  // echoed into the JSON, for merging runs
  int connections = 1;
  int inputs = 1;
  int threads = 2;
  double warmup_s = 2.0;
  double duration_s = 10.0;
  double timeout_s = 30.0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "http_load: %s\n"
               "usage: http_load [--url http://HOST:PORT] [--api openai|tei|v2]\n"
               "  [--connections C] [--inputs K] [--threads T] [--warmup S] [--duration S]\n"
               "  [--encoding float|base64] [--model NAME] [--v2-model NAME] [--path ROUTE]\n"
               "  [--sentences FILE] [--timeout S] [--label TEXT]\n",
               why.c_str());
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    std::string value;
    if (key == "-h" || key == "--help") usage("closed-loop HTTP load generator");
    if (const size_t eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= argc) usage(key + " needs a value");
      value = argv[++i];
    }
    auto to_int = [&](int lo) {
      char* end = nullptr;
      const long v = std::strtol(value.c_str(), &end, 10);
      if (end == value.c_str() || *end || v < lo || v > 1'000'000)
        usage(key + ": not an integer >= " + std::to_string(lo) + ": '" + value + "'");
      return static_cast<int>(v);
    };
    auto to_seconds = [&](double lo) {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end || !(v >= lo) || v > 1e6)
        usage(key + ": not a number of seconds >= " + std::to_string(lo) + ": '" + value + "'");
      return v;
    };
    if (key == "--url") o.url = value;
    else if (key == "--api") o.api = value;
    else if (key == "--encoding") o.encoding = value;
    else if (key == "--model") o.model = value;
    else if (key == "--v2-model") o.v2_model = value;
    else if (key == "--path") o.path = value;
    else if (key == "--sentences") o.sentences = value;
    else if (key == "--label") o.label = value;
    else if (key == "--connections" || key == "-c") o.connections = to_int(1);
    else if (key == "--inputs") o.inputs = to_int(1);
    else if (key == "--threads") o.threads = to_int(1);
    else if (key == "--warmup") o.warmup_s = to_seconds(0);
    else if (key == "--duration") o.duration_s = to_seconds(0.01);
    else if (key == "--timeout") o.timeout_s = to_seconds(0.001);
    else usage("unknown option " + key);
  }
  if (o.api != "openai" && o.api != "tei" && o.api != "v2")
    usage("--api must be openai, tei or v2, got '" + o.api + "'");
  if (o.encoding != "float" && o.encoding != "base64")
    usage("--encoding must be float or base64, got '" + o.encoding + "'");
  if (o.path.empty()) {
    if (o.api == "openai") o.path = "/v1/embeddings";
    else if (o.api == "tei") o.path = "/embed";
    else o.path = "/v2/models/" + o.v2_model + "/infer";
  }
  if (o.path.front() != '/') usage("--path must start with '/'");
  return o;
}

struct Target {
  std::string host;
  std::string port;
};

// "http://host:port" (a trailing '/' allowed); https is not spoken.
Target parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) usage("--url must start with http://, got '" + url + "'");
  std::string rest = url.substr(scheme.size());
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    if (slash + 1 != rest.size()) usage("--url takes no path (use --path): '" + url + "'");
    rest.resize(slash);
  }
  Target t;
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) {
    t.host = rest;
    t.port = "80";
  } else {
    t.host = rest.substr(0, colon);
    t.port = rest.substr(colon + 1);
  }
  if (t.host.empty() || t.port.empty()) usage("--url has no host or port: '" + url + "'");
  return t;
}

std::vector<std::string> load_sentences(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage("--sentences: cannot read '" + path + "'");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  if (out.empty()) usage("--sentences: '" + path + "' has no sentences");
  return out;
}

// The body of one request of `o.inputs` sentences starting at `first`.
std::string make_body(const Options& o, const std::vector<std::string>& sentences, size_t first) {
  json texts = json::array();
  for (int i = 0; i < o.inputs; ++i)
    texts.push_back(sentences[(first + static_cast<size_t>(i)) % sentences.size()]);
  json body;
  if (o.api == "openai") {
    body = {{"input", texts}, {"model", o.model}, {"encoding_format", o.encoding}};
  } else if (o.api == "tei") {
    body = {{"inputs", texts}};
  } else {
    body = {{"inputs", json::array({{{"name", "text"},
                                     {"shape", json::array({o.inputs})},
                                     {"datatype", "BYTES"},
                                     {"data", texts}}})}};
  }
  return body.dump();
}

// Head and body as they go on the wire.
std::string make_request(const Options& o, const Target& t, const std::string& body) {
  std::string r;
  r.reserve(body.size() + 200);
  r += "POST " + o.path + " HTTP/1.1\r\n";
  r += "Host: " + t.host + ":" + t.port + "\r\n";
  r += "User-Agent: fanin-http_load\r\n";
  r += "Content-Type: application/json\r\n";
  r += "Accept: application/json\r\n";
  r += "Connection: keep-alive\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  r += body;
  return r;
}

// Decoded byte count of a base64 string (padding excluded).
size_t base64_decoded_size(const std::string& s) {
  size_t n = s.size();
  size_t pad = 0;
  while (n > 0 && s[n - 1] == '=') --n, ++pad;
  return s.size() / 4 * 3 - std::min<size_t>(pad, 2);
}

// What one 200 response holds: the rows and their width, read the way the
// api shapes it; so a route that answers 200 with something else is caught.
json check_response(const Options& o, const std::string& body) {
  json r = {{"ok", false}, {"expected_rows", o.inputs}};
  try {
    const json j = json::parse(body);
    int64_t rows = -1, dim = -1;
    if (o.api == "openai") {
      const json& data = j.at("data");
      rows = static_cast<int64_t>(data.size());
      const json& e = data.at(0).at("embedding");
      dim = e.is_string() ? static_cast<int64_t>(base64_decoded_size(e.get<std::string>()) / 4)
                          : static_cast<int64_t>(e.size());
    } else if (o.api == "tei") {
      rows = static_cast<int64_t>(j.size());
      dim = static_cast<int64_t>(j.at(0).size());
    } else {
      const json& shape = j.at("outputs").at(0).at("shape");
      rows = shape.at(0).get<int64_t>();
      dim = shape.size() > 1 ? shape.at(1).get<int64_t>() : 1;
    }
    r["rows"] = rows;
    r["dim"] = dim;
    r["ok"] = rows == o.inputs && dim > 0;
  } catch (const std::exception& e) {
    r["error"] = std::string("response body is not the api's shape: ") + e.what();
    r["body_head"] = body.substr(0, 300);
  }
  return r;
}

// Counters of one connection (each touched by its own coroutine only; one
// connection runs on one io_context thread, so no atomics are needed).
struct Counters {
  std::map<int, uint64_t> status;           // HTTP status -> responses
  std::map<std::string, uint64_t> errors;   // "connect", "timeout", "reset", "other: ..."
  uint64_t bytes_sent = 0, bytes_received = 0;
  uint64_t connects = 0, server_closes = 0;

  void merge(const Counters& c) {
    for (const auto& [k, v] : c.status) status[k] += v;
    for (const auto& [k, v] : c.errors) errors[k] += v;
    bytes_sent += c.bytes_sent;
    bytes_received += c.bytes_received;
    connects += c.connects;
    server_closes += c.server_closes;
  }
};

struct ConnectionStats {
  Counters window;  // what completed inside the measured window
  Counters all;     // the whole run, warm-up included (errors show up here first)
  std::vector<uint64_t> latency_ns_200;  // 200 responses inside the window
  std::vector<uint32_t> per_second;      // 200 responses per second of the window
};

// Read-only after setup, shared by every connection.
struct Run {
  Options options;
  Target target;
  tcp::resolver::results_type endpoints;
  std::vector<std::string> requests;  // by first sentence offset
  size_t n_sentences = 0;
  Clock::time_point measure_begin, measure_end;
  Clock::duration timeout{};

  // The first 200 response is checked once; the first other status kept.
  std::atomic<bool> checked{false};
  std::atomic<bool> bad_status_kept{false};
  std::mutex mu;
  json check = nullptr;
  json first_bad_status = nullptr;
  std::atomic<uint64_t> unexpected_exceptions{0};
};

std::string classify(const ErrorCode& ec) {
  if (ec == beast::error::timeout) return "timeout";
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::connection_aborted || ec == http::error::partial_message)
    return "reset";
  return "other: " + ec.message();
}

void count_error(Run& run, ConnectionStats& st, Clock::time_point t, const std::string& what) {
  st.all.errors[what]++;
  if (t >= run.measure_begin && t < run.measure_end) st.window.errors[what]++;
}

// One I/O thread: its io_context, and the deadlines of its connections.
// Timeouts are enforced by one watchdog per lane that wakes every 20 ms and
// cancels the socket of any connection past its deadline, rather than by a
// timer armed around every read and write (beast::tcp_stream): those cost a
// timer-heap update and often a timerfd system call per operation, which
// showed up as a third of the generator's CPU per request.
struct Deadline {
  tcp::socket* socket = nullptr;  // null while not connected
  Clock::time_point at = Clock::time_point::max();
  bool fired = false;  // the watchdog cancelled the socket
};

struct Lane {
  asio::io_context context{1};
  std::vector<Deadline*> deadlines;  // touched by this lane's thread only
  int live = 0;                      // connections not yet finished
};

constexpr auto kWatchdogPeriod = std::chrono::milliseconds(20);

asio::awaitable<void> watchdog(Lane& lane) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (lane.live > 0) {
    timer.expires_after(kWatchdogPeriod);
    co_await timer.async_wait(kNoThrow);
    const auto now = Clock::now();
    for (Deadline* d : lane.deadlines) {
      if (d->socket && !d->fired && now >= d->at) {
        d->fired = true;
        ErrorCode ignored;
        d->socket->cancel(ignored);
      }
    }
  }
}

asio::awaitable<void> connection(Run& run, Lane& lane, ConnectionStats& st, int id) {
  const auto ex = co_await asio::this_coro::executor;
  const Options& o = run.options;
  const auto stop_at = run.measure_end;
  const auto close_at = run.measure_end + kGrace;
  const double seconds_per_bin = 1.0;
  Deadline deadline;
  lane.deadlines.push_back(&deadline);
  // Off the watchdog's list however the coroutine ends.
  struct Unlist {
    Lane& lane;
    Deadline* d;
    ~Unlist() { std::erase(lane.deadlines, d); }
  } unlist{lane, &deadline};
  // Each connection walks the sentences from its own offset, as the queue
  // bench's producers do, so concurrent requests carry different texts.
  uint64_t k = 0;
  beast::flat_buffer buffer;
  // Beast reads as much as the buffer's spare capacity (at least 512 bytes):
  // without room, a 5 KB response takes eleven recv calls instead of one.
  buffer.reserve(kReadBuffer);
  // Cancelled by the watchdog reads as a timeout, whatever the operation saw.
  auto failure = [&](const ErrorCode& ec) { return deadline.fired ? "timeout" : classify(ec); };
  while (Clock::now() < stop_at) {
    tcp::socket socket(ex);
    deadline = {&socket, close_at, false};
    auto [cerr, ep] = co_await asio::async_connect(socket, run.endpoints, kNoThrow);
    (void)ep;
    if (cerr) {
      deadline.socket = nullptr;
      count_error(run, st, Clock::now(), deadline.fired ? "connect timeout" : "connect");
      asio::steady_timer pause(ex);
      pause.expires_after(kReconnectPause);
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    ErrorCode ignored;
    // One write per request, so Nagle would only delay it.
    socket.set_option(tcp::no_delay(true), ignored);
    st.all.connects++;
    if (Clock::now() >= run.measure_begin) st.window.connects++;
    buffer.consume(buffer.size());
    while (true) {
      const auto t0 = Clock::now();
      if (t0 >= stop_at) break;
      const size_t first = (static_cast<size_t>(id) * 7 + k * static_cast<size_t>(o.inputs)) %
                           run.n_sentences;
      const std::string& req = run.requests[first];
      // A watchdog that fired just as the last read completed cancelled
      // nothing: this request gets a fresh deadline.
      deadline.at = std::min(t0 + run.timeout, close_at);
      deadline.fired = false;
      auto [werr, nw] = co_await asio::async_write(socket, asio::buffer(req), kNoThrow);
      if (werr) {
        count_error(run, st, Clock::now(), failure(werr));
        break;
      }
      http::response_parser<http::string_body> parser;
      parser.body_limit(uint64_t{1} << 30);  // 32 float rows are ~250 KB; never the limit
      auto [rerr, nr] = co_await http::async_read(socket, buffer, parser, kNoThrow);
      const auto t1 = Clock::now();
      if (rerr) {
        count_error(run, st, t1, failure(rerr));
        break;
      }
      ++k;
      const bool in_window = t1 >= run.measure_begin && t1 < run.measure_end;
      const auto& res = parser.get();
      const int status = static_cast<int>(res.result_int());
      st.all.status[status]++;
      st.all.bytes_sent += nw;
      st.all.bytes_received += nr;
      if (in_window) {
        st.window.status[status]++;
        st.window.bytes_sent += nw;
        st.window.bytes_received += nr;
      }
      if (status == 200) {
        if (in_window) {
          const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
          st.latency_ns_200.push_back(static_cast<uint64_t>(ns));
          const double since = std::chrono::duration<double>(t1 - run.measure_begin).count();
          const size_t bin = static_cast<size_t>(since / seconds_per_bin);
          if (bin < st.per_second.size()) st.per_second[bin]++;
        }
        if (!run.checked.exchange(true)) {
          json c = check_response(o, res.body());
          std::lock_guard lock(run.mu);
          run.check = std::move(c);
        }
      } else if (!run.bad_status_kept.exchange(true)) {
        std::lock_guard lock(run.mu);
        run.first_bad_status = {{"status", status}, {"body_head", res.body().substr(0, 300)}};
      }
      if (!res.keep_alive()) {
        st.all.server_closes++;
        if (in_window) st.window.server_closes++;
        break;
      }
    }
    deadline.socket = nullptr;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
}

// Nearest rank, as fanin's summarize() and the Python peers.
double percentile_us(const std::vector<uint64_t>& sorted_ns, double q) {
  if (sorted_ns.empty()) return 0.0;
  const double n = static_cast<double>(sorted_ns.size());
  const size_t k =
      static_cast<size_t>(std::clamp(std::ceil(q * n) - 1.0, 0.0, n - 1.0));
  return static_cast<double>(sorted_ns[k]) / 1000.0;
}

double cpu_seconds(const rusage& u, bool user) {
  const timeval& tv = user ? u.ru_utime : u.ru_stime;
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

json counters_json(const Counters& c) {
  json status = json::object();
  for (const auto& [k, v] : c.status) status[std::to_string(k)] = v;
  json errors = json::object();
  for (const auto& [k, v] : c.errors) errors[k] = v;
  return {{"status", status},     {"errors", errors},
          {"connects", c.connects}, {"server_closes", c.server_closes},
          {"bytes_sent", c.bytes_sent}, {"bytes_received", c.bytes_received}};
}

// Each connection is a descriptor: 1,024 of them pass a soft limit of 1,024
// (a common default), so take the hard limit, or say why not.
void raise_fd_limit(int connections) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  const rlim_t need = static_cast<rlim_t>(connections) + 64;
  if (r.rlim_cur >= need) return;
  r.rlim_cur = std::min(r.rlim_max, std::max(need, r.rlim_cur));
  setrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < need)
    std::fprintf(stderr, "http_load: open-file limit %llu is below %d connections; connects will fail\n",
                 static_cast<unsigned long long>(r.rlim_cur), connections);
}

int run_main(int argc, char** argv) {
  auto run = std::make_unique<Run>();
  run->options = parse_args(argc, argv);
  const Options& o = run->options;
  raise_fd_limit(o.connections);
  run->target = parse_url(o.url);
  const std::vector<std::string> sentences = load_sentences(o.sentences);
  run->n_sentences = sentences.size();
  for (size_t first = 0; first < sentences.size(); ++first)
    run->requests.push_back(make_request(o, run->target, make_body(o, sentences, first)));
  run->timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(o.timeout_s));

  {
    asio::io_context resolve_ctx;
    tcp::resolver resolver(resolve_ctx);
    ErrorCode ec;
    run->endpoints = resolver.resolve(run->target.host, run->target.port, ec);
    if (ec) usage("cannot resolve " + run->target.host + ":" + run->target.port + ": " + ec.message());
  }

  const int n_threads = std::min(o.threads, o.connections);
  std::vector<std::unique_ptr<Lane>> lanes;
  for (int i = 0; i < n_threads; ++i) lanes.push_back(std::make_unique<Lane>());
  std::vector<ConnectionStats> stats(static_cast<size_t>(o.connections));
  const size_t bins = static_cast<size_t>(std::ceil(o.duration_s));
  for (ConnectionStats& s : stats) s.per_second.assign(bins, 0);

  const auto start = Clock::now();
  auto to_duration = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  run->measure_begin = start + to_duration(o.warmup_s);
  run->measure_end = run->measure_begin + to_duration(o.duration_s);

  for (int c = 0; c < o.connections; ++c) {
    Lane& lane = *lanes[static_cast<size_t>(c % n_threads)];
    Run* r = run.get();
    lane.live++;
    asio::co_spawn(lane.context, connection(*r, lane, stats[static_cast<size_t>(c)], c),
                   [r, &lane](std::exception_ptr e) {
                     lane.live--;
                     // A bug in a coroutine ends that connection, not the run.
                     if (!e) return;
                     r->unexpected_exceptions++;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       std::fprintf(stderr, "http_load: connection ended: %s\n", ex.what());
                     } catch (...) {
                     }
                   });
  }
  std::fprintf(stderr, "http_load: %s%s %s, %d connections x %d inputs, %d threads, %.1f s + %.1f s\n",
               o.url.c_str(), o.path.c_str(), o.api.c_str(), o.connections, o.inputs, n_threads,
               o.warmup_s, o.duration_s);
  for (auto& lane : lanes) asio::co_spawn(lane->context, watchdog(*lane), asio::detached);
  std::vector<std::thread> threads;
  for (auto& lane : lanes) threads.emplace_back([&lane] { lane->context.run(); });

  // CPU use over the measured window alone: setup and warm-up stay out.
  std::this_thread::sleep_until(run->measure_begin);
  rusage u0{}, u1{};
  getrusage(RUSAGE_SELF, &u0);
  const auto w0 = Clock::now();
  std::this_thread::sleep_until(run->measure_end);
  getrusage(RUSAGE_SELF, &u1);
  const auto w1 = Clock::now();
  for (std::thread& t : threads) t.join();

  Counters window, all;
  std::vector<uint64_t> lat;
  std::vector<uint64_t> per_second(bins, 0);
  for (const ConnectionStats& s : stats) {
    window.merge(s.window);
    all.merge(s.all);
    lat.insert(lat.end(), s.latency_ns_200.begin(), s.latency_ns_200.end());
    for (size_t b = 0; b < bins; ++b) per_second[b] += s.per_second[b];
  }
  std::sort(lat.begin(), lat.end());
  const double wall = std::chrono::duration<double>(w1 - w0).count();
  const double user = cpu_seconds(u1, true) - cpu_seconds(u0, true);
  const double sys = cpu_seconds(u1, false) - cpu_seconds(u0, false);
  const double cores = wall > 0 ? (user + sys) / wall : 0.0;
  const uint64_t ok = lat.size();
  const double rps = static_cast<double>(ok) / o.duration_s;
  uint64_t responses = 0;
  for (const auto& [k, v] : window.status) responses += v;
  double sum_ns = 0;
  for (uint64_t v : lat) sum_ns += static_cast<double>(v);

  json j;
  j["tool"] = "http_load";
  if (!o.label.empty()) j["label"] = o.label;
  j["url"] = o.url;
  j["path"] = o.path;
  j["api"] = o.api;
  if (o.api == "openai") j["encoding_format"] = o.encoding;
  j["connections"] = o.connections;
  j["inputs_per_request"] = o.inputs;
  j["threads"] = n_threads;
  j["warmup_s"] = o.warmup_s;
  j["duration_s"] = o.duration_s;
  j["sentences_file"] = o.sentences;
  j["sentences_in_file"] = sentences.size();
  j["requests"] = ok;
  j["responses"] = responses;
  j["requests_per_s"] = rps;
  j["sentences_per_s"] = rps * o.inputs;
  j["latency_us"] = {{"p50", percentile_us(lat, 0.50)},   {"p90", percentile_us(lat, 0.90)},
                     {"p99", percentile_us(lat, 0.99)},   {"p999", percentile_us(lat, 0.999)},
                     {"min", ok ? static_cast<double>(lat.front()) / 1000.0 : 0.0},
                     {"max", ok ? static_cast<double>(lat.back()) / 1000.0 : 0.0},
                     {"mean", ok ? sum_ns / static_cast<double>(ok) / 1000.0 : 0.0}};
  j["window"] = counters_json(window);
  j["whole_run"] = counters_json(all);
  j["per_second_200"] = per_second;
  j["generator"] = {
      {"cpu_user_s", user},
      {"cpu_sys_s", sys},
      {"wall_s", wall},
      {"cores_used", cores},
      {"threads", n_threads},
      {"cpu_us_per_request", ok ? (user + sys) * 1e6 / static_cast<double>(ok) : 0.0},
      // Near its thread count, the generator (not the server) may be the bound.
      {"saturated", cores > 0.85 * n_threads},
      {"unexpected_exceptions", run->unexpected_exceptions.load()}};
  {
    std::lock_guard lock(run->mu);
    j["check"] = run->check;
    if (!run->first_bad_status.is_null()) j["first_non_200"] = run->first_bad_status;
  }
  j["notes"] = {
      "closed loop: each connection sends a request, reads the whole response, sends the next",
      "requests, latency and per_second_200 count 200 responses completed inside the measured "
      "window; latency runs from the write of the request to the last byte of the response",
      "percentiles are nearest rank over every sample of the window",
      "generator.cores_used = (user + sys CPU seconds of this process) / wall seconds over the "
      "window"};
  std::printf("%s\n", j.dump(2).c_str());
  std::fprintf(stderr,
               "http_load: %d conn x %d: %.0f req/s, %.0f sentences/s, p50 %.0f us, p99 %.0f us, "
               "non-200 %llu, errors %zu kinds, generator %.2f cores\n",
               o.connections, o.inputs, rps, rps * o.inputs, percentile_us(lat, 0.5),
               percentile_us(lat, 0.99), static_cast<unsigned long long>(responses - ok),
               window.errors.size(), cores);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const UsageError& e) {
    usage(e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_load: %s\n", e.what());
    return 1;
  }
}
