// server/app.h: fanin serve's routes: the OpenAI, TEI and KServe v2 APIs and
// /metrics over one Engine (Note [Serving routes] in docs/server.md).
//
// Contract: App is a translator. handle() parses a request with the
// protocol layer (api/), calls the public Engine API (submit_texts,
// submit_token_ids, submit_batch, tokenize, ...) with a callback, and
// formats the result when the engine calls back; it holds no batching and
// no model logic. handle() and error_response() run on the HTTP server's
// I/O threads and never block: a request waits for the engine in the
// queue, not on a thread, so the batch queue sees every waiting client.
// set_engine() (once, from the thread that loaded the model) and
// begin_drain() may run on any thread. Every accepted request gets exactly
// one response (the engine resolves every accepted request).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fanin/engine.h"
#include "server/api/metrics.h"
#include "server/http/http_server.h"

namespace fanin::server {

// What a server answers beyond the engine's own limits (the CLI's flags).
struct AppOptions {
  std::string served_model_name = "all-MiniLM-L6-v2";  // /v1/models, /info, /v2/models/{m}
  std::vector<std::string> aliases;  // other accepted model names (e.g. "minilm")
  std::string api_key;               // empty: no key needed
  size_t max_client_batch_size = 32; // inputs per request
  int64_t max_concurrent_inputs = 512;  // inputs in flight over all requests; beyond: 429/503
  bool auto_truncate = true;         // a too-long input is cut (else 422 / 400)
  bool strict_model = false;         // unknown OpenAI `model`: 404 (else a warning)
  std::chrono::milliseconds request_timeout{0};  // 0: none; X-Request-Timeout-Ms overrides
  int max_json_depth = 32;
  std::string version = "0.1.0";
  // One line per request and the warnings; empty: none. Called on I/O and
  // engine worker threads.
  std::function<void(const std::string& line)> log;
  bool json_log = false;  // JSON lines instead of text
  bool log_requests = true;
};

class App {
 public:
  explicit App(AppOptions options);
  ~App();

  // The engine to serve, once loaded and warmed up: from now on readiness
  // follows Engine::ready().
  void set_engine(std::shared_ptr<Engine> engine);
  // Readiness goes 503 and new inference requests are refused (503): the
  // server is shutting down. Requests already accepted still complete.
  void begin_drain();
  // True when the engine is set, ready and not draining.
  bool ready() const;
  // The engine, or null before set_engine.
  std::shared_ptr<Engine> engine() const;

  // The HttpServer::Handler.
  void handle(HttpRequest&& request, Respond respond);
  // The HttpServer::ErrorFormatter: the server's own errors in the shape
  // of the API at `path`.
  HttpResponse error_response(std::string_view method, std::string_view path, int status,
                              const std::string& message) const;

  // Connections open now, for /metrics (the HTTP server's count).
  void set_connection_count(std::function<size_t()> count);
  // Where the engine's results are formatted: `post(fn)` runs fn on another
  // thread (HttpServer::post: an I/O thread), so an engine worker spends no
  // time on JSON. Unset: on the worker. Both setters before the server
  // starts; `post` must stay callable until the engine has drained.
  void set_executor(std::function<void(std::function<void()>)> post);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fanin::server
