// `fanin serve`: binds first (so probes get an answer while the model loads:
// /v2/health/live 200, readiness 503), loads the model into an Engine with
// warm-up, then serves until SIGTERM/SIGINT: readiness goes 503, the
// listener closes, accepted requests drain (--drain-timeout-ms), exit 0.
#include "serve.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "cli.h"
#include "cores.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/model.h"
#include "fanin/sentence_encoder.h"
#include "server/app.h"
#include "server/http/http_server.h"

namespace fanin::cli {
namespace {

std::mutex g_log_mu;  // guards stderr lines: one line per fprintf, never interleaved

void write_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_log_mu);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out.push_back(c);
  }
  return out;
}

// A server message ("fanin: ready"), as text or a JSON line.
void say(const ServeOptions& o, const char* level, const std::string& message) {
  if (o.json_output)
    write_line("{\"level\":\"" + std::string(level) + "\",\"message\":\"" + json_escape(message) +
               "\"}");
  else
    write_line(message);
}

int level_rank(const std::string& level) {
  if (level == "error") return 0;
  if (level == "warn") return 1;
  if (level == "info") return 2;
  if (level == "debug") return 3;
  throw UsageError("--log-level: expected error, warn, info or debug, got '" + level + "'");
}

void check_options(const ServeOptions& o) {
  if (o.devices.empty()) check_backend_name(o.backend);
  if (o.port < 0 || o.port > 65535) throw UsageError("--port must be in 0..65535");
  if (o.payload_limit < 1) throw UsageError("--payload-limit must be >= 1 byte");
  if (o.max_client_batch_size < 1) throw UsageError("--max-client-batch-size must be >= 1");
  if (o.max_concurrent_requests < 1) throw UsageError("--max-concurrent-requests must be >= 1");
  if (o.max_batch_size < 1) throw UsageError("--max-batch-size must be >= 1");
  if (o.max_batch_tokens < 0) throw UsageError("--max-batch-tokens must be >= 0 (0: no budget)");
  if (o.max_queue_delay_us < 0) throw UsageError("--max-queue-delay-us must be >= 0");
  if (o.workers < 0) throw UsageError("--workers must be >= 0 (0: one per core on cpu, 1 on cuda)");
  if (o.io_threads < 0)
    throw UsageError("--io-threads must be >= 0 (0: on cuda one per core up to 16, else half the "
                     "cores up to 8)");
  if (o.io_poll_us < 0 || o.io_poll_us > 1000000)
    throw UsageError("--io-poll-us must be in 0..1000000");
  for (int64_t ms : {o.header_timeout_ms, o.body_timeout_ms, o.idle_timeout_ms})
    if (ms < 1) throw UsageError("--header/body/idle-timeout-ms must be >= 1");
  if (o.request_timeout_ms < 0 || o.drain_timeout_ms < 0)
    throw UsageError("--request-timeout-ms and --drain-timeout-ms must be >= 0");
  if (o.max_connections < 1) throw UsageError("--max-connections must be >= 1");
  level_rank(o.log_level);
}

std::vector<Device*> devices_of(const ServeOptions& o) {
  if (!o.devices.empty()) return Device::list(o.devices);
  return {&Device::get(o.backend)};
}

// --workers 0: on CPU devices only, the usable cores (taskset/cgroup
// respected) shared among them, each worker on its own stream; 1 where a GPU
// is among the devices.
int default_workers(const std::vector<Device*>& devices) {
  for (const Device* d : devices)
    if (d->type() != DeviceType::kCpu) return 1;
  const int per_device = usable_cores() / static_cast<int>(devices.size());
  return std::clamp(per_device, 1, 256);
}

// --io-threads 0 where a GPU serves: one I/O thread per hardware thread,
// up to 16 (the engine's workers mostly wait on the device, so the cores
// are the HTTP side's; at 64 connections on the H200, 16 threads did
// 0.81-0.84 of in-process against 0.75-0.79 with 8: docs/performance.md).
// On CPU devices 0 stays the HTTP layer's default (half the cores, up to
// 8), the other half being the compute's. Decided from the names, before
// any device is opened: the server listens before the model loads.
int default_io_threads(const ServeOptions& o) {
  if (o.io_threads > 0) return o.io_threads;
  const bool gpu = o.devices.empty() ? o.backend.rfind("cuda", 0) == 0
                                     : o.devices.find("cuda") != std::string::npos ||
                                           (o.devices == "all" && Device::count(DeviceType::kCuda) > 0);
  if (!gpu) return 0;
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
}

// Loads the model on every device and starts the Engine (warm-up included).
std::shared_ptr<Engine> load_engine(const ServeOptions& o) {
  const std::vector<Device*> devices = devices_of(o);
  EngineOptions eo;
  eo.workers = o.workers > 0 ? o.workers : default_workers(devices);
  eo.max_batch_size = o.max_batch_size;
  eo.max_queue_delay = std::chrono::microseconds(o.max_queue_delay_us);
  eo.adaptive_queue_delay = !o.fixed_queue_delay;
  eo.max_queue_length = static_cast<size_t>(o.max_queue_length);
  eo.warmup = !o.no_warmup;
  eo.log = [&o](const std::string& line) { say(o, "warn", line); };
  if (o.model == "mlp") {
    MlpConfig config;
    if (!o.dtype.empty()) config.dtype = parse_dtype(o.dtype);
    auto replicas = load_replicas<Model>(devices, [&](Device& d) {
      return std::shared_ptr<const Model>(Mlp::random(config, 42, d));
    });
    return std::make_shared<Engine>(std::move(replicas), eo);
  }
  auto replicas = load_replicas<SentenceEncoder>(devices, [&](Device& d) {
    const DType dtype = o.dtype.empty() ? (d.type() == DeviceType::kCpu ? DType::kF32 : DType::kF16)
                                        : parse_dtype(o.dtype);
    return std::shared_ptr<const SentenceEncoder>(
        SentenceEncoder::load(o.model, d, dtype, o.max_length));
  });
  const int max_length = replicas.front()->max_length();
  if (o.max_batch_tokens > 0 && o.max_batch_tokens < max_length)
    throw UsageError("--max-batch-tokens " + std::to_string(o.max_batch_tokens) +
                     " is below the model's max length " + std::to_string(max_length) +
                     ": a full-length input would never fit a batch");
  eo.max_tokens_per_batch = o.max_batch_tokens;
  return std::make_shared<Engine>(std::move(replicas), eo);
}

std::string default_model_name(const ServeOptions& o) {
  if (!o.served_model_name.empty()) return o.served_model_name;
  if (o.model == "mlp") return "mlp";
  std::filesystem::path p(o.model);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // a trailing '/'
  return p.filename().string().empty() ? "model" : p.filename().string();
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "HTTP server: OpenAI /v1/embeddings, TEI /embed, KServe v2 /v2/models/{m}/infer, "
               "/metrics (docs/server.md)");
  cmd->add_option("--model", o.model, "model folder (all-MiniLM-L6-v2), or 'mlp' (random MLP)")
      ->capture_default_str();
  cmd->add_option("--backend", o.backend, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--devices", o.devices, "one replica per device: 'cuda:0,cpu:1' or 'all'");
  cmd->add_option("--dtype", o.dtype, "f32, f16 or bf16 (default: f32 on cpu, f16 on cuda)");
  cmd->add_option("--host", o.host, "address to bind (loopback by default)")->capture_default_str();
  cmd->add_option("--port", o.port, "port to bind; 0 picks a free one")->capture_default_str();
  cmd->add_option("--served-model-name", o.served_model_name,
                  "model name in /v1/models, /info and /v2/models/{m} (default: the folder's)");
  cmd->add_option("--api-key", o.api_key,
                  "require 'Authorization: Bearer KEY' on inference routes (or FANIN_API_KEY)");
  cmd->add_option("--payload-limit", o.payload_limit, "largest request body in bytes (413 above)")
      ->capture_default_str();
  cmd->add_option("--max-client-batch-size", o.max_client_batch_size, "inputs per request")
      ->capture_default_str();
  cmd->add_option("--max-concurrent-requests", o.max_concurrent_requests,
                  "inputs in flight over all requests (429 above; 503 on /v2)")
      ->capture_default_str();
  cmd->add_flag("--no-auto-truncate", o.no_auto_truncate,
                "reject inputs over the model's max length (default: cut them)");
  cmd->add_flag("--strict-model", o.strict_model, "404 for an unknown OpenAI `model`");
  cmd->add_option("--max-batch-size", o.max_batch_size, "requests per batch")->capture_default_str();
  cmd->add_option("--max-batch-tokens", o.max_batch_tokens, "tokens per batch (0: no budget)")
      ->capture_default_str();
  cmd->add_option("--max-queue-delay-us", o.max_queue_delay_us,
                  "longest wait for a fuller batch")->capture_default_str();
  cmd->add_flag("--fixed-queue-delay", o.fixed_queue_delay,
                "always wait --max-queue-delay-us for a batch that is not full (default: not "
                "when requests come too sparsely for the wait to bring another)");
  cmd->add_option("--max-queue-length", o.max_queue_length, "queued inputs (429 above)")
      ->capture_default_str();
  cmd->add_option("--workers", o.workers,
                  "engine workers per device, each on its own stream (0: on cpu the cores this "
                  "process may use, shared among the cpu devices; on cuda 1)")
      ->capture_default_str();
  cmd->add_option("--io-threads", o.io_threads, "HTTP I/O threads (0: on cuda one per core up to 16, else half the cores up to 8)")
      ->capture_default_str();
  cmd->add_option("--io-poll-us", o.io_poll_us,
                  "an idle I/O thread polls this long before it sleeps (0: sleeps at once)")
      ->capture_default_str();
  cmd->add_option("--max-length", o.max_length, "tokens per input (0: the model's, 256)")
      ->capture_default_str();
  cmd->add_option("--request-timeout-ms", o.request_timeout_ms,
                  "default deadline (0: none); X-Request-Timeout-Ms overrides; 504 past it")
      ->capture_default_str();
  cmd->add_option("--header-timeout-ms", o.header_timeout_ms, "slow clients: header within this")
      ->capture_default_str();
  cmd->add_option("--body-timeout-ms", o.body_timeout_ms, "body within this after the header")
      ->capture_default_str();
  cmd->add_option("--idle-timeout-ms", o.idle_timeout_ms, "keep-alive connections idle this long close")
      ->capture_default_str();
  cmd->add_option("--drain-timeout-ms", o.drain_timeout_ms, "on SIGTERM, wait this long for requests")
      ->capture_default_str();
  cmd->add_option("--max-connections", o.max_connections, "open connections at most")
      ->capture_default_str();
  cmd->add_flag("--no-warmup", o.no_warmup, "serve without warming up (graphs, plans, routing)");
  cmd->add_flag("--json-output", o.json_output, "log JSON lines");
  cmd->add_option("--log-level", o.log_level, "error, warn, info (one line per request) or debug")
      ->capture_default_str();
  return cmd;
}

int run_serve(const ServeOptions& given) {
  ServeOptions o = given;
  if (o.api_key.empty())
    if (const char* k = std::getenv("FANIN_API_KEY")) o.api_key = k;
  check_options(o);
  const int level = level_rank(o.log_level);

  server::AppOptions ao;
  ao.served_model_name = default_model_name(o);
  ao.aliases = {o.model == "mlp" ? "mlp" : "minilm"};
  ao.api_key = o.api_key;
  ao.max_client_batch_size = static_cast<size_t>(o.max_client_batch_size);
  ao.max_concurrent_inputs = o.max_concurrent_requests;
  ao.auto_truncate = !o.no_auto_truncate;
  ao.strict_model = o.strict_model;
  ao.request_timeout = std::chrono::milliseconds(o.request_timeout_ms);
  ao.version = FANIN_VERSION;
  ao.json_log = o.json_output;
  ao.log_requests = level >= 2;
  if (level >= 1) ao.log = [](const std::string& line) { write_line(line); };
  server::App app(ao);

  server::HttpOptions ho;
  ho.host = o.host;
  ho.port = static_cast<uint16_t>(o.port);
  ho.io_threads = default_io_threads(o);
  ho.io_poll = std::chrono::microseconds(o.io_poll_us);
  ho.body_limit = static_cast<size_t>(o.payload_limit);
  ho.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  ho.body_timeout = std::chrono::milliseconds(o.body_timeout_ms);
  ho.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  ho.max_connections = static_cast<size_t>(o.max_connections);
  server::HttpServer http(
      ho, [&app](server::HttpRequest&& r, server::Respond done) { app.handle(std::move(r), std::move(done)); },
      [&app](std::string_view method, std::string_view path, int status,
             const std::string& message) { return app.error_response(method, path, status, message);
      });
  app.set_connection_count([&http] { return http.connections(); });
  // Responses are formatted on the I/O threads; `http` outlives the engine's
  // callbacks: the engine drains below, before `http` goes.
  app.set_executor([&http](std::function<void()> fn) { http.post(std::move(fn)); });
  const auto drain = std::chrono::milliseconds(o.drain_timeout_ms);
  http.on_signals([&](int signo) {
    say(o, "info", std::string("fanin: ") + (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                       ": draining (readiness 503, listener closed)");
    app.begin_drain();
    http.shutdown(drain);  // on an I/O thread: begins it; wait() below ends it
  });
  http.start();
  say(o, "info", "fanin: listening on http://" + o.host + ":" + std::to_string(http.port()));

  std::shared_ptr<Engine> engine;
  try {
    engine = load_engine(o);
  } catch (...) {
    http.shutdown(std::chrono::milliseconds(0));
    throw;
  }
  app.set_engine(engine);
  const EngineInfo& info = engine->info();
  std::string devs;
  for (const std::string& d : info.devices) devs += (devs.empty() ? "" : ",") + d;
  say(o, "info", "fanin: ready (" + app.engine()->info().model_name + " as '" +
                     ao.served_model_name + "' on " + devs + ", " + to_string(info.dtype) + ", " +
                     std::to_string(engine->options().workers) + " workers per device)");

  const bool drained = http.wait();
  const bool engine_drained = engine->drain(drain);
  say(o, "info", std::string("fanin: stopped (") +
                     (drained && engine_drained ? "every accepted request answered"
                                                : "drain timed out; the rest was cancelled") +
                     ")");
  return kExitOk;
}

}  // namespace fanin::cli
