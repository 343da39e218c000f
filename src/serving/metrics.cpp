#include "serving/metrics.h"

#include <algorithm>
#include <sstream>

namespace fanin::serving {

const std::vector<double>& latency_bounds_us() {
  static const std::vector<double> bounds{10,    25,    50,     100,    250,    500,    1000, 2500,
                                          5000,  10000, 25000,  50000,  100000, 250000, 1e6};
  return bounds;
}

void observe(std::vector<uint64_t>& hist, double us) {
  const auto& b = latency_bounds_us();
  size_t i = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), us) - b.begin());
  ++hist[i];  // i == b.size() is the +Inf bucket
}

EngineMetrics empty_metrics(int max_batch, int workers) {
  EngineMetrics m;
  m.batch_fill.assign(static_cast<size_t>(max_batch) + 1, 0);
  m.latency_bounds_us = latency_bounds_us();
  m.queue_us_hist.assign(m.latency_bounds_us.size() + 1, 0);
  m.compute_us_hist.assign(m.latency_bounds_us.size() + 1, 0);
  m.workers.resize(static_cast<size_t>(workers));
  return m;
}

namespace {

void histogram(std::ostringstream& out, const char* name, const char* help,
               const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
               double sum) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cum += counts[i];
    out << name << "_bucket{le=\"" << bounds[i] << "\"} " << cum << "\n";
  }
  cum += counts.back();
  out << name << "_bucket{le=\"+Inf\"} " << cum << "\n";
  out << name << "_sum " << sum << "\n" << name << "_count " << cum << "\n";
}

const std::string& device_name(const EngineMetrics& m, int d) {
  static const std::string unknown = "unknown";
  return d >= 0 && static_cast<size_t>(d) < m.devices.size() ? m.devices[d].name : unknown;
}

}  // namespace

std::string to_prometheus(const EngineMetrics& m) {
  std::ostringstream out;
  out << "# HELP fanin_requests_total Requests by outcome.\n"
      << "# TYPE fanin_requests_total counter\n"
      << "fanin_requests_total{outcome=\"submitted\"} " << m.submitted << "\n"
      << "fanin_requests_total{outcome=\"completed\"} " << m.completed << "\n"
      << "fanin_requests_total{outcome=\"failed\"} " << m.failed << "\n";
  out << "# HELP fanin_rejections_total Requests rejected or failed, by reason.\n"
      << "# TYPE fanin_rejections_total counter\n"
      << "fanin_rejections_total{reason=\"queue_full\"} " << m.rejected_queue_full << "\n"
      << "fanin_rejections_total{reason=\"invalid_argument\"} "
      << m.rejected_invalid + m.invalid_in_batch << "\n"
      << "fanin_rejections_total{reason=\"shutdown\"} " << m.rejected_shutdown << "\n"
      << "fanin_rejections_total{reason=\"deadline_exceeded\"} " << m.deadline_exceeded << "\n"
      << "fanin_rejections_total{reason=\"cancelled\"} " << m.cancelled << "\n"
      << "fanin_rejections_total{reason=\"device_error\"} " << m.device_errors << "\n";
  out << "# HELP fanin_batches_total Batches run.\n# TYPE fanin_batches_total counter\n"
      << "fanin_batches_total " << m.batches << "\n";
  out << "# HELP fanin_batch_fill Batches by number of requests.\n"
      << "# TYPE fanin_batch_fill histogram\n";
  uint64_t cum = 0;
  double total = 0;
  for (size_t n = 0; n < m.batch_fill.size(); ++n) {
    cum += m.batch_fill[n];
    total += static_cast<double>(n * m.batch_fill[n]);
    out << "fanin_batch_fill_bucket{le=\"" << n << "\"} " << cum << "\n";
  }
  out << "fanin_batch_fill_bucket{le=\"+Inf\"} " << cum << "\nfanin_batch_fill_sum " << total
      << "\nfanin_batch_fill_count " << cum << "\n";
  histogram(out, "fanin_queue_time_us", "Time from submit to batch formation (us).",
            m.latency_bounds_us, m.queue_us_hist, m.queue_us_sum);
  histogram(out, "fanin_compute_time_us", "Time from batch formation to results (us).",
            m.latency_bounds_us, m.compute_us_hist, m.compute_us_sum);
  out << "# HELP fanin_queue_length Requests waiting now.\n# TYPE fanin_queue_length gauge\n"
      << "fanin_queue_length " << m.queue_length << "\n";
  out << "# HELP fanin_worker_batches_total Batches per worker.\n"
      << "# TYPE fanin_worker_batches_total counter\n";
  for (size_t w = 0; w < m.workers.size(); ++w)
    out << "fanin_worker_batches_total{worker=\"" << w << "\",stream=\"" << m.workers[w].stream_id
        << "\",device=\"" << device_name(m, m.workers[w].device) << "\"} " << m.workers[w].batches
        << "\n";
  out << "# HELP fanin_worker_busy_us_total Time each worker spent running batches (us).\n"
      << "# TYPE fanin_worker_busy_us_total counter\n";
  for (size_t w = 0; w < m.workers.size(); ++w)
    out << "fanin_worker_busy_us_total{worker=\"" << w << "\",stream=\""
        << m.workers[w].stream_id << "\",device=\"" << device_name(m, m.workers[w].device)
        << "\"} " << m.workers[w].busy_us << "\n";
  out << "# HELP fanin_device_healthy 1 while a device is in rotation, 0 once taken out.\n"
      << "# TYPE fanin_device_healthy gauge\n";
  for (const auto& d : m.devices)
    out << "fanin_device_healthy{device=\"" << d.name << "\"} " << (d.healthy ? 1 : 0) << "\n";
  out << "# HELP fanin_device_batches_total Batches run to completion per device.\n"
      << "# TYPE fanin_device_batches_total counter\n";
  for (const auto& d : m.devices)
    out << "fanin_device_batches_total{device=\"" << d.name << "\"} " << d.batches << "\n";
  out << "# HELP fanin_device_requests_total Requests run per device.\n"
      << "# TYPE fanin_device_requests_total counter\n";
  for (const auto& d : m.devices)
    out << "fanin_device_requests_total{device=\"" << d.name << "\"} " << d.requests << "\n";
  out << "# HELP fanin_device_failed_batches_total Batches that threw, per device.\n"
      << "# TYPE fanin_device_failed_batches_total counter\n";
  for (const auto& d : m.devices)
    out << "fanin_device_failed_batches_total{device=\"" << d.name << "\"} "
        << d.failed_batches << "\n";
  out << "# HELP fanin_device_failures_total Devices taken out of rotation.\n"
      << "# TYPE fanin_device_failures_total counter\n"
      << "fanin_device_failures_total " << m.device_failures << "\n";
  return out.str();
}

}  // namespace fanin::serving
