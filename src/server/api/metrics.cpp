#include "server/api/metrics.h"

#include <algorithm>

#include "server/api/json.h"

namespace fanin::server::api {
namespace {

std::vector<double> powers_of_two(int count, double max) {
  std::vector<double> b;
  for (int i = 0; i < count; ++i) {
    const double v = static_cast<double>(int64_t{1} << i);
    if (v > max) break;
    b.push_back(v);
  }
  return b;
}

// Appends `v` as a label value: backslash, quote and newline escaped.
void append_label(std::string& out, std::string_view name, std::string_view v) {
  out += name;
  out += "=\"";
  for (const char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += '"';
}

void header(std::string& out, std::string_view name, std::string_view type,
            std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, double v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  append_double(out, v);
  out += '\n';
}

void scalar(std::string& out, std::string_view name, std::string_view type,
            std::string_view help, double v) {
  header(out, name, type, help);
  sample(out, name, "", v);
}

void labelled(std::string& out, std::string_view name, std::string_view help,
              std::string_view label, const std::map<std::string, uint64_t>& values) {
  header(out, name, "counter", help);
  for (const auto& [k, v] : values) {
    std::string l;
    append_label(l, label, k);
    sample(out, name, l, static_cast<double>(v));
  }
}

void histogram(std::string& out, std::string_view name, std::string_view help,
               const Histogram& h) {
  header(out, name, "histogram", help);
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    std::string le = "le=\"";
    append_double(le, h.bounds[i]);
    le += '"';
    sample(out, bucket, le, static_cast<double>(cumulative));
  }
  sample(out, bucket, "le=\"+Inf\"", static_cast<double>(h.count));
  sample(out, std::string(name) + "_sum", "", h.sum);
  sample(out, std::string(name) + "_count", "", static_cast<double>(h.count));
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double value, uint64_t times) {
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), value);
  counts[static_cast<size_t>(it - bounds.begin())] += times;
  sum += value * static_cast<double>(times);
  count += times;
}

std::vector<double> tei_duration_buckets() {
  std::vector<double> b;
  double v = 0.00001;
  for (int i = 0; i < 35; ++i) {
    v *= 1.5;
    b.push_back(v);
  }
  return b;
}

ServerStats::ServerStats(int64_t max_input_length) {
  const std::vector<double> d = tei_duration_buckets();
  s_.duration = Histogram(d);
  s_.tokenization = Histogram(d);
  s_.queue = Histogram(d);
  s_.inference = Histogram(d);
  s_.resolve = Histogram(d);
  s_.handoff = Histogram(d);
  s_.format = Histogram(d);
  s_.input_length = Histogram(powers_of_two(20, static_cast<double>(max_input_length)));
}

void ServerStats::observe(const RequestObservation& o) {
  const char* method = o.batch ? "batch" : "single";
  std::lock_guard lock(mu_);
  ++s_.http_requests[{to_string(o.api), std::string(o.route), o.status}];
  if (!o.inference) return;
  ++s_.request_count[method];
  s_.embed_count += static_cast<uint64_t>(std::max<int64_t>(o.inputs, 0));
  if (!o.failure.empty()) {
    ++s_.request_failure[std::string(o.failure)];
    return;
  }
  ++s_.request_success[method];
  s_.embed_success += static_cast<uint64_t>(std::max<int64_t>(o.inputs, 0));
  s_.duration.observe(o.total_us * 1e-6);
  s_.tokenization.observe(o.tokenization_us * 1e-6);
  s_.queue.observe(o.queue_us * 1e-6);
  s_.inference.observe(o.inference_us * 1e-6);
  if (o.resolve_us >= 0) s_.resolve.observe(o.resolve_us * 1e-6);
  if (o.handoff_us >= 0) s_.handoff.observe(o.handoff_us * 1e-6);
  if (o.format_us >= 0) s_.format.observe(o.format_us * 1e-6);
  if (o.inputs > 0 && o.tokens > 0)
    s_.input_length.observe(static_cast<double>(o.tokens) / static_cast<double>(o.inputs),
                            static_cast<uint64_t>(o.inputs));
}

void ServerStats::record_rejection(std::string_view reason) {
  std::lock_guard lock(mu_);
  ++s_.rejections[std::string(reason)];
}

void ServerStats::connection_opened() noexcept {
  connections_.fetch_add(1, std::memory_order_relaxed);
  connections_total_.fetch_add(1, std::memory_order_relaxed);
}
void ServerStats::set_connections(int64_t open) noexcept {
  connections_.store(open, std::memory_order_relaxed);
}

void ServerStats::connection_closed() noexcept {
  connections_.fetch_sub(1, std::memory_order_relaxed);
}
void ServerStats::request_started() noexcept { in_flight_.fetch_add(1, std::memory_order_relaxed); }
void ServerStats::request_finished() noexcept {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

ServerStats::Snapshot ServerStats::snapshot() const {
  Snapshot s;
  {
    std::lock_guard lock(mu_);
    s = s_;
  }
  s.in_flight = in_flight_.load(std::memory_order_relaxed);
  s.connections = connections_.load(std::memory_order_relaxed);
  s.connections_total = connections_total_.load(std::memory_order_relaxed);
  return s;
}

std::string prometheus_text(const ServerStats& stats, const EngineMetrics& engine) {
  const ServerStats::Snapshot s = stats.snapshot();
  std::string out;
  out.reserve(16384);
  labelled(out, "te_request_count", "Inference requests received", "method", s.request_count);
  labelled(out, "te_request_success", "Inference requests that succeeded", "method",
           s.request_success);
  labelled(out, "te_request_failure", "Inference requests that failed, by error", "err",
           s.request_failure);
  histogram(out, "te_request_duration", "Request duration in seconds", s.duration);
  histogram(out, "te_request_tokenization_duration", "Tokenization time in seconds",
            s.tokenization);
  histogram(out, "te_request_queue_duration", "Time in the batching queue in seconds", s.queue);
  histogram(out, "te_request_inference_duration", "Inference time in seconds", s.inference);
  histogram(out, "te_request_input_length", "Tokens per input", s.input_length);
  scalar(out, "te_embed_count", "counter", "Inputs received on inference routes",
         static_cast<double>(s.embed_count));
  scalar(out, "te_embed_success", "counter", "Inputs embedded successfully",
         static_cast<double>(s.embed_success));
  scalar(out, "te_queue_size", "gauge", "Requests waiting in the batching queue",
         static_cast<double>(engine.queue_length));
  Histogram batch(powers_of_two(13, 4096));
  for (size_t n = 1; n < engine.batch_fill.size(); ++n)
    if (engine.batch_fill[n] != 0) batch.observe(static_cast<double>(n), engine.batch_fill[n]);
  histogram(out, "te_batch_next_size", "Requests per batch", batch);

  header(out, "fanin_http_requests_total", "counter", "HTTP requests answered, by route and status");
  for (const auto& [key, v] : s.http_requests) {
    std::string l;
    append_label(l, "api", std::get<0>(key));
    l += ',';
    append_label(l, "route", std::get<1>(key));
    l += ',';
    append_label(l, "status", std::to_string(std::get<2>(key)));
    sample(out, "fanin_http_requests_total", l, static_cast<double>(v));
  }
  labelled(out, "fanin_http_rejections_total", "Requests turned away before parsing, by reason",
           "reason", s.rejections);
  scalar(out, "fanin_http_in_flight", "gauge", "HTTP requests being handled",
         static_cast<double>(s.in_flight));
  scalar(out, "fanin_http_connections", "gauge", "Open HTTP connections",
         static_cast<double>(s.connections));
  scalar(out, "fanin_http_connections_total", "counter", "HTTP connections accepted",
         static_cast<double>(s.connections_total));
  histogram(out, "fanin_request_resolve_duration",
            "Batch results ready to the engine's callback for the request, in seconds", s.resolve);
  histogram(out, "fanin_request_handoff_duration",
            "Engine callback to the reply begun on the connection's I/O thread, in seconds",
            s.handoff);
  histogram(out, "fanin_request_format_duration", "Formatting the reply body, in seconds",
            s.format);
  return out;
}

}  // namespace fanin::server::api
