// The direct-mode runner of `fanin bench`.
//
// Note [Bench direct mode]
// Each of N threads leases its own stream from the device's pool and
// allocates an input tensor on it and two HostBuffers (page-locked on CUDA).
// One request is: perturb the host input, then inside one encoder copy it
// into the input tensor, run the forward, copy the output into the host
// buffer; end the encoder (one commit per request) and synchronize the
// stream (--sync: block in synchronize, or poll query() first). With
// --graphs each thread captures that whole request once on its stream
// (Note [Copies in graphs]) and a request is one Graph::launch. Every thread
// does one request before the clock starts (first allocations, capture
// check), then all threads are released together into warm-up, then measure
// until a common deadline; a request started before the deadline is counted
// when it ends. The threads meet the main thread at three points (ready,
// finished, release) under one mutex; none of that is on the request path.
// Leases are held until the main thread has read the allocator at the end,
// so the per-stream memory it reports is what N live streams hold.
#include "bench_direct.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "fanin/device.h"
#include "fanin/error.h"
#include "fanin/graph.h"
#include "fanin/host_buffer.h"
#include "fanin/model.h"
#include "fanin/stream.h"
#include "fanin/tensor.h"

namespace fanin::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Where the threads and the main thread meet (Note [Bench direct mode]).
struct Meeting {
  explicit Meeting(int n) : n(n) {}
  const int n;
  std::mutex mu;  // guards every member below
  std::condition_variable cv;
  int ready = 0;
  int finished = 0;
  bool go = false;
  bool abort = false;
  bool release = false;
  Clock::time_point measure_start, measure_end;
};

// One thread's measurements; written by that thread, read by main after
// the meeting point that follows.
struct ThreadOut {
  std::vector<double> latency_us;
  Clock::time_point last_end;
  std::exception_ptr error;
};

// Stores `value` as element `i` of the `dtype` array at `buf`.
void put(void* buf, size_t i, DType dtype, float value) {
  auto* bytes = static_cast<uint8_t*>(buf);
  switch (dtype) {
    case DType::kF32: std::memcpy(bytes + 4 * i, &value, 4); break;
    case DType::kI32: {
      int32_t v = static_cast<int32_t>(std::lrint(value));
      std::memcpy(bytes + 4 * i, &v, 4);
      break;
    }
    case DType::kF16:
    case DType::kBF16: {
      uint16_t h = dtype == DType::kF16 ? f32_to_f16(value) : f32_to_bf16(value);
      std::memcpy(bytes + 2 * i, &h, 2);
      break;
    }
  }
}

// The `dtype` array of `n` elements at `buf`, as f32.
std::vector<float> decode(const void* buf, size_t n, DType dtype) {
  const auto* bytes = static_cast<const uint8_t*>(buf);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[i], bytes + 4 * i, 4);
    } else if (dtype == DType::kI32) {
      int32_t v;
      std::memcpy(&v, bytes + 4 * i, 4);
      out[i] = static_cast<float>(v);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return out;
}

// Fills `buf` with deterministic values in [-1, 1), different per thread.
void fill_input(HostBuffer& buf, int64_t numel, DType dtype, int thread_index) {
  uint32_t x = 0x9e3779b9u * static_cast<uint32_t>(thread_index + 1);
  for (int64_t i = 0; i < numel; ++i) {
    x = x * 1664525u + 1013904223u;  // LCG: cheap and good enough for inputs
    put(buf.data(), static_cast<size_t>(i), dtype,
        static_cast<float>(x >> 8) * 0x1.0p-23f - 1.0f);
  }
}

// Throws DeviceError unless `got` matches `want` within float tolerance.
void check_same(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (i >= got.size() || !(std::fabs(got[i] - want[i]) <= 1e-2f * (1.0f + std::fabs(want[i]))))
      throw Error(ErrorCode::kDeviceError,
                  "[fanin bench] " + std::string(what) + ": element " + std::to_string(i) +
                      " is " + (i < got.size() ? std::to_string(got[i]) : "missing") +
                      ", expected " + std::to_string(want[i]));
  }
}

void worker(const Model& model, const DirectConfig& cfg, int index, Meeting& meet,
            ThreadOut& out) {
  // Declared first, destroyed last: the lease outlives what uses its stream,
  // and the host buffers outlive the graph that copies from and to them.
  StreamLease lease;
  HostBuffer host_in, host_out;
  Tensor x, y_graph;
  std::unique_ptr<Graph> graph;
  const DType dtype = model.dtype();
  // Encodes one request's work: copy in, forward, copy out.
  auto encode_request = [&](Stream& s) -> Tensor {
    Encoder enc = s.command_buffer().begin_encoding();
    x.copy_from_host(host_in.data(), host_in.size(), s);
    Tensor y = model.forward(x, s);
    y.copy_to_host(host_out.data(), host_out.size(), s);
    return y;
  };
  auto wait = [&](Stream& s) {
    if (cfg.sync != SyncMode::kBlock) {
      while (!s.query())
        if (cfg.sync == SyncMode::kYield) std::this_thread::yield();
    }
    s.synchronize();  // returns at once after polling; rethrows the work's errors
  };
  auto request = [&](uint64_t i) {
    Stream& s = lease.stream();
    put(host_in.data(), 0, dtype, static_cast<float>(i % 1024) * (1.0f / 1024));  // fresh-ish
    if (graph) graph->launch(s);
    else encode_request(s);
    wait(s);
  };

  try {
    lease = model.device().stream_pool().acquire();
    Stream& s = lease.stream();
    Shape in_shape{cfg.batch}, out_shape{cfg.batch};
    for (int64_t d : model.input_shape()) in_shape.push_back(d);
    for (int64_t d : model.output_shape()) out_shape.push_back(d);
    x = Tensor::empty(in_shape, dtype, s);
    host_in = HostBuffer(model.device(), x.nbytes());
    fill_input(host_in, x.numel(), dtype, index);
    const int64_t out_numel = checked_numel(out_shape, "bench");
    host_out = HostBuffer(model.device(), static_cast<size_t>(out_numel) * dtype_size(dtype));
    if (cfg.graphs) {
      // The whole request is one graph (Note [Copies in graphs]). Check one
      // replay against the eager request: a broken graph must not produce
      // fast garbage.
      graph = Graph::capture(s, [&] { y_graph = encode_request(s); });
      encode_request(s);
      s.synchronize();
      const auto want = decode(host_out.data(), static_cast<size_t>(out_numel), dtype);
      std::memset(host_out.data(), 0xff, host_out.size());
      graph->launch(s);
      s.synchronize();
      check_same("graph replay vs eager request",
                 decode(host_out.data(), static_cast<size_t>(out_numel), dtype), want);
    }
    request(0);
  } catch (...) {
    out.error = std::current_exception();
  }
  Clock::time_point start, end;
  {
    std::unique_lock<std::mutex> lock(meet.mu);
    ++meet.ready;
    meet.cv.notify_all();
    meet.cv.wait(lock, [&] { return meet.go || meet.abort; });
    if (meet.abort) return;
    start = meet.measure_start;
    end = meet.measure_end;
  }
  out.last_end = start;
  if (!out.error) {
    try {
      uint64_t i = 1;
      while (Clock::now() < start) request(i++);  // warm-up
      for (;;) {
        const auto t0 = Clock::now();
        if (t0 >= end) break;
        request(i++);
        const auto t1 = Clock::now();
        out.latency_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        out.last_end = t1;
      }
    } catch (...) {
      out.error = std::current_exception();
    }
  }
  std::unique_lock<std::mutex> lock(meet.mu);
  ++meet.finished;
  meet.cv.notify_all();
  meet.cv.wait(lock, [&] { return meet.release; });
}

}  // namespace

LatencySummary summarize(std::vector<double>& us) {
  LatencySummary s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto rank = [&](double p) {
    size_t k = static_cast<size_t>(std::ceil(p * static_cast<double>(us.size())));
    return us[std::clamp<size_t>(k, 1, us.size()) - 1];
  };
  s.p50_us = rank(0.50);
  s.p99_us = rank(0.99);
  s.p999_us = rank(0.999);
  double sum = 0;
  for (double v : us) sum += v;
  s.mean_us = sum / static_cast<double>(us.size());
  s.min_us = us.front();
  s.max_us = us.back();
  return s;
}

DirectResult run_direct(const Model& model, const DirectConfig& cfg) {
  const int n = cfg.threads;
  Allocator& alloc = model.device().allocator();
  alloc.trim();  // what earlier runs cached does not count as this run's memory
  DirectResult r;
  r.threads = n;
  r.alloc_before = alloc.stats();

  Meeting meet(n);
  std::vector<ThreadOut> outs(static_cast<size_t>(n));
  for (auto& o : outs) o.latency_us.reserve(1 << 16);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  try {
    for (int i = 0; i < n; ++i)
      threads.emplace_back(worker, std::cref(model), std::cref(cfg), i, std::ref(meet),
                           std::ref(outs[static_cast<size_t>(i)]));
  } catch (const std::system_error& e) {  // the OS refused a thread: stop the others
    {
      std::lock_guard<std::mutex> lock(meet.mu);
      meet.abort = true;
      meet.cv.notify_all();
    }
    for (auto& t : threads) t.join();
    throw Error(ErrorCode::kDeviceError, "[fanin bench] cannot start thread " +
                                             std::to_string(threads.size() + 1) + " of " +
                                             std::to_string(n) + ": " + e.what());
  }

  auto first_error = [&]() -> std::exception_ptr {
    for (auto& o : outs)
      if (o.error) return o.error;
    return nullptr;
  };
  auto finish = [&] {
    for (auto& t : threads) t.join();
    if (auto e = first_error()) std::rethrow_exception(e);
  };

  {
    std::unique_lock<std::mutex> lock(meet.mu);
    meet.cv.wait(lock, [&] { return meet.ready == n; });
    if (auto e = first_error()) {  // a thread could not set up: stop them all
      meet.abort = true;
      meet.cv.notify_all();
      lock.unlock();
      for (auto& t : threads) t.join();
      std::rethrow_exception(e);
    }
    const auto now = Clock::now();
    meet.measure_start = now + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(cfg.warmup_seconds));
    meet.measure_end = meet.measure_start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(cfg.seconds));
    meet.go = true;
    meet.cv.notify_all();
    meet.cv.wait(lock, [&] { return meet.finished == n; });
  }
  r.alloc_end = alloc.stats();  // leases still held
  {
    std::lock_guard<std::mutex> lock(meet.mu);
    meet.release = true;
    meet.cv.notify_all();
  }
  finish();

  std::vector<double> all;
  Clock::time_point last = meet.measure_start;
  for (auto& o : outs) {
    r.requests_per_thread.push_back(o.latency_us.size());
    r.requests += o.latency_us.size();
    all.insert(all.end(), o.latency_us.begin(), o.latency_us.end());
    last = std::max(last, o.last_end);
  }
  r.elapsed_s = std::chrono::duration<double>(last - meet.measure_start).count();
  r.rps = r.elapsed_s > 0 ? static_cast<double>(r.requests) / r.elapsed_s : 0.0;
  r.latency = summarize(all);
  return r;
}

}  // namespace fanin::cli
