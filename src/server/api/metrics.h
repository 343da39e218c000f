// server/api/metrics.h: the server's request statistics and their Prometheus
// text with TEI's te_* names (plus fanin_http_*).
//
// Contract: ServerStats is thread-safe: observe() and record_rejection()
// take one mutex for a few increments; the gauges are atomics. Its reads
// (prometheus_text) see a consistent snapshot of what the mutex guards.
// prometheus_text() is valid Prometheus text exposition format 0.0.4
// (HELP/TYPE lines, cumulative buckets ending in +Inf, _sum, _count); the
// engine's own fanin_* lines (Engine::prometheus()) are appended by the app.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "fanin/engine.h"
#include "server/api/errors.h"

namespace fanin::server::api {

// Counts per bucket (not cumulative) of a fixed set of upper bounds.
struct Histogram {
  std::vector<double> bounds;   // ascending upper bounds; +Inf is implicit
  std::vector<uint64_t> counts;  // bounds.size() + 1 (the last is > every bound)
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {});
  // Adds `times` observations of `value`.
  void observe(double value, uint64_t times = 1);
};

// One finished request, as the app records it.
struct RequestObservation {
  Api api = Api::kOpenAI;
  std::string_view route;  // the route's template, e.g. "/v2/models/{m}/infer"
  int status = 200;
  bool inference = false;  // an embed/infer route: counted in te_request_*
  bool batch = false;      // inputs sent as a list (te_request_count{method="batch"})
  double total_us = 0, tokenization_us = 0, queue_us = 0, inference_us = 0;
  // The reply path of a request the engine answered (Note [Reply path]):
  // its batch's results ready -> the engine's callback for it (the worker
  // resolving the batch's requests in turn), that callback -> the reply
  // begun on the connection's I/O thread, and the reply's formatting.
  // Negative: not measured (answered without the engine).
  double resolve_us = -1, handoff_us = -1, format_us = -1;
  int64_t inputs = 0;      // inputs in the request
  int64_t tokens = 0;      // tokens run for them (text engines)
  std::string_view failure;  // "" on success, else failure_label(reason)
};

// The server-level counters behind /metrics.
class ServerStats {
 public:
  // max_input_length bounds te_request_input_length's buckets (TEI: powers
  // of two up to it).
  explicit ServerStats(int64_t max_input_length = 512);

  // Records a finished request.
  void observe(const RequestObservation& o);
  // Counts a request turned away before parsing (body_too_large,
  // unauthorized, in_flight_limit, ...).
  void record_rejection(std::string_view reason);
  // Gauges: a connection opened / closed, a request begun / ended.
  void connection_opened() noexcept;
  // Sets the open-connection gauge (from the HTTP server's own count).
  void set_connections(int64_t open) noexcept;
  void connection_closed() noexcept;
  void request_started() noexcept;
  void request_finished() noexcept;

  // A consistent copy of the counters.
  struct Snapshot {
    std::map<std::string, uint64_t> request_count, request_success;  // by method
    std::map<std::string, uint64_t> request_failure;                  // by err
    Histogram duration, tokenization, queue, inference, input_length;
    Histogram resolve, handoff, format;  // fanin_request_{resolve,handoff,format}_duration
    uint64_t embed_count = 0, embed_success = 0;
    std::map<std::tuple<std::string, std::string, int>, uint64_t> http_requests;  // api, route, status
    std::map<std::string, uint64_t> rejections;
    int64_t in_flight = 0, connections = 0;
    uint64_t connections_total = 0;
  };
  Snapshot snapshot() const;

 private:
  mutable std::mutex mu_;
  Snapshot s_;  // guarded by mu_, except the gauges below
  std::atomic<int64_t> in_flight_{0}, connections_{0};
  std::atomic<uint64_t> connections_total_{0};
};

// TEI's duration buckets in seconds: 35 of them, 1.5e-5 x 1.5^k.
std::vector<double> tei_duration_buckets();

// te_request_count{method}, te_request_success{method}, te_request_failure
// {err} (counters); te_request_duration, te_request_tokenization_duration,
// te_request_queue_duration, te_request_inference_duration (histograms, s);
// te_request_input_length, te_batch_next_size (histograms); te_queue_size
// (gauge); te_embed_count, te_embed_success (counters); fanin_http_requests_
// total{api,route,status}, fanin_http_rejections_total{reason},
// fanin_http_in_flight, fanin_http_connections (gauges),
// fanin_http_connections_total; fanin_request_resolve_duration,
// fanin_request_handoff_duration, fanin_request_format_duration
// (histograms, s: RequestObservation's reply path).
std::string prometheus_text(const ServerStats& stats, const EngineMetrics& engine);

}  // namespace fanin::server::api
