// What app.cpp (dispatch, admission, logging) and app_routes.cpp (the
// routes) share. Internal to src/server.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "server/api/embeddings.h"
#include "server/api/errors.h"
#include "server/api/kserve.h"
#include "server/api/metrics.h"
#include "server/app.h"

namespace fanin::server {

// Microseconds as a double, for timings and logs.
inline double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// One request in progress: where its answer goes and what it reports.
struct Call {
  Respond respond;
  // HttpRequest::post: runs work on the connection's I/O thread (empty in
  // tests that call App::handle with a hand-made request).
  std::function<void(std::function<void()>)> post;
  api::Api api = api::Api::kTei;
  std::string method;
  std::string route;          // the route's template ("/v2/models/{m}/infer")
  Clock::time_point received;
  bool inference = false;     // counted in te_request_*
  bool batch = false;         // inputs sent as a list
  int64_t inputs = 0;
  int64_t tokens = 0;
  // Written by the thread that submitted, after submit returns; the engine
  // may have answered by then (its callback reads it): atomic.
  std::atomic<double> tokenization_us{0};
  double queue_us = 0, inference_us = 0;  // written by the one thread that finishes
  double resolve_us = -1, handoff_us = -1, format_us = -1;  // RequestObservation's reply path
  std::string failure;        // failure_label of the error, if any
};
using CallPtr = std::shared_ptr<Call>;

struct App::Impl {
  explicit Impl(AppOptions o) : options(std::move(o)) {}

  // Finishes `call` with `response`: metrics, the log line, then respond.
  void finish(Call& call, HttpResponse response);
  // Finishes `call` with an error of its API.
  void fail(Call& call, const api::ErrorBody& error, api::Reason reason);
  void fail(Call& call, const api::ApiError& e) { fail(call, api::error_response(call.api, e), e.reason()); }
  void fail(Call& call, const Error& e) {
    fail(call, api::error_response(call.api, e), api::reason_of(e.code()));
  }
  void fail(Call& call, api::Reason reason, const std::string& message, std::string_view param = {}) {
    fail(call, api::error_response(call.api, reason, message, param), reason);
  }

  // The engine if ready; else fails `call` with 503 and returns null.
  std::shared_ptr<Engine> ready_engine(Call& call);
  // Takes `n` inputs of the in-flight budget; false (the call failed with
  // 429 / 503) when over it. release() gives them back.
  bool admit(Call& call, int64_t n);
  void release(int64_t n) noexcept { inputs_in_flight.fetch_sub(n, std::memory_order_acq_rel); }
  // The request's options: deadline from X-Request-Timeout-Ms (or the
  // default), truncation. Throws ApiError for a malformed header.
  RequestOptions request_options(const HttpRequest& req, std::optional<bool> truncate) const;
  bool known_model(std::string_view name) const;
  // The engine (null before set_engine), its v2 signature, and readiness:
  // set, ready and not draining.
  std::shared_ptr<Engine> current() const;
  api::ModelSignature current_signature() const;
  bool is_ready() const;
  // The body parsers' limits.
  api::ParseLimits limits() const { return {options.max_client_batch_size, options.max_json_depth}; }
  void log_line(const std::string& line) const;
  // The per-request log line (--log-level info), text or JSON.
  void log_request(std::string_view method, std::string_view route, int status, int64_t inputs,
                   int64_t tokens, double queue_us, double compute_us, double total_us) const;

  // Routes (app_routes.cpp). Each finishes the call, now or from the
  // engine's callback.
  void openai_embeddings(const CallPtr& call, const HttpRequest& req);
  void openai_models(const CallPtr& call);
  void tei_embed(const CallPtr& call, const HttpRequest& req);
  void tei_tokenize(const CallPtr& call, const HttpRequest& req);
  void tei_decode(const CallPtr& call, const HttpRequest& req);
  void tei_info(const CallPtr& call);
  void kserve_infer(const CallPtr& call, const HttpRequest& req, std::string_view model);
  void kserve_model(const CallPtr& call, std::string_view model, std::string_view what);
  void metrics(const CallPtr& call);

  const AppOptions options;
  api::ServerStats stats;
  std::atomic<int64_t> inputs_in_flight{0};
  std::atomic<bool> draining{false};
  std::function<size_t()> connections;  // set before the server starts
  std::function<void(std::function<void()>)> post;  // set before the server starts

  mutable std::mutex engine_mu;  // guards engine and signature
  std::shared_ptr<Engine> engine;
  api::ModelSignature signature;  // the v2 routes' view of the engine
};

}  // namespace fanin::server
