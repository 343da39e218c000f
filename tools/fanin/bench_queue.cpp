// `fanin bench --mode queue`: producers submit single requests to an Engine.
//
// Note [Bench queue mode]
// Each producer keeps `window` requests in flight (1 = closed loop): it
// waits for its oldest future, records that request's latency (submit to
// result), and submits a new one. Throughput counts results inside the
// measured interval. The mean batch size and the fill histogram come from
// the engine's own metrics, taken as differences over the interval.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <thread>

#include "bench_direct.h"
#include "bench_more.h"
#include "cli.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/model.h"

namespace fanin::cli {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

struct QueueRun {
  int producers = 0;
  uint64_t requests = 0, rejected = 0;
  double elapsed_s = 0, rps = 0, mean_batch = 0;
  LatencySummary latency;
  std::vector<uint64_t> fill;
};

QueueRun run_one(Engine& engine, int64_t in_numel, int producers, int window, double warmup,
                 double seconds) {
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(producers));
  std::atomic<uint64_t> rejected{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      std::vector<float> input(static_cast<size_t>(in_numel));
      for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>((i * 7 + p) % 13) * 0.1f;
      std::deque<std::pair<SteadyClock::time_point, std::future<Response>>> inflight;
      auto submit = [&] {
        for (;;) {
          try {
            inflight.emplace_back(SteadyClock::now(), engine.submit(input));
            return;
          } catch (const Error& e) {
            if (e.code() != ErrorCode::kQueueFull) throw;
            rejected.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
          }
        }
      };
      while (!stop.load(std::memory_order_relaxed)) {
        while (static_cast<int>(inflight.size()) < window) submit();
        auto [t0, f] = std::move(inflight.front());
        inflight.pop_front();
        f.get();
        if (measuring.load(std::memory_order_relaxed))
          lat[static_cast<size_t>(p)].push_back(
              std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
      }
      for (auto& [t0, f] : inflight) f.get();
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  const EngineMetrics before = engine.metrics();
  const auto start = SteadyClock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  const auto end = SteadyClock::now();
  const EngineMetrics after = engine.metrics();
  stop = true;
  for (auto& t : threads) t.join();
  QueueRun r;
  r.producers = producers;
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  r.requests = all.size();
  r.elapsed_s = std::chrono::duration<double>(end - start).count();
  r.rps = static_cast<double>(r.requests) / r.elapsed_s;
  r.latency = summarize(all);
  r.rejected = rejected.load();
  const uint64_t batches = after.batches - before.batches;
  const uint64_t done = after.completed - before.completed;
  r.mean_batch = batches ? static_cast<double>(done) / static_cast<double>(batches) : 0.0;
  r.fill.resize(after.batch_fill.size());
  for (size_t i = 0; i < r.fill.size(); ++i) r.fill[i] = after.batch_fill[i] - before.batch_fill[i];
  return r;
}

}  // namespace

json run_queue_bench(const BenchOptions& o) {
  Device& device = Device::get(o.backend);
  MlpConfig config;
  config.dims.assign(o.dims.begin(), o.dims.end());
  config.dtype = parse_dtype(o.dtype);
  auto model = Mlp::random(config, 42, device);
  EngineOptions eo;
  eo.workers = o.workers;
  eo.max_batch_size = o.max_batch;
  eo.max_queue_delay = std::chrono::microseconds(o.max_delay_us);
  eo.use_graphs = o.graphs;
  if (o.graphs)
    for (int b = 1; b <= o.max_batch; b *= 2) eo.preferred_batch_sizes.push_back(b);
  if (o.graphs && eo.preferred_batch_sizes.back() != o.max_batch)
    eo.preferred_batch_sizes.push_back(o.max_batch);
  Engine engine(model, eo);
  std::fprintf(stderr, "fanin bench queue: %s on %s, %d worker(s), max batch %d, delay %d us%s\n",
               model->name().c_str(), device.name().c_str(), o.workers, o.max_batch,
               o.max_delay_us, o.graphs ? ", graphs per padded size" : "");
  json runs = json::array();
  for (int p : o.producers) {
    QueueRun r = run_one(engine, config.dims.front(), p, o.window, o.warmup_seconds, o.seconds);
    std::fprintf(stderr,
                 "fanin bench queue: %3d producers  %10.0f req/s  p50 %8.1f us  p99 %8.1f us  "
                 "p999 %8.1f us  mean batch %.1f\n",
                 p, r.rps, r.latency.p50_us, r.latency.p99_us, r.latency.p999_us, r.mean_batch);
    runs.push_back({{"producers", p},
                    {"window", o.window},
                    {"requests", r.requests},
                    {"elapsed_s", r.elapsed_s},
                    {"rps", r.rps},
                    {"p50_us", r.latency.p50_us},
                    {"p99_us", r.latency.p99_us},
                    {"p999_us", r.latency.p999_us},
                    {"mean_us", r.latency.mean_us},
                    {"mean_batch", r.mean_batch},
                    {"queue_full_retries", r.rejected},
                    {"batch_fill", r.fill}});
  }
  engine.drain();
  json j;
  j["model"] = {{"name", model->name()}, {"dims", config.dims}, {"dtype", o.dtype},
                {"weight_bytes", model->weight_bytes()}};
  j["device"] = {{"name", device.name()}, {"description", device.description()}};
  j["engine"] = {{"workers", o.workers}, {"max_batch_size", o.max_batch},
                 {"max_queue_delay_us", o.max_delay_us}, {"graphs", o.graphs}};
  j["results"] = runs;
  j["notes"] = {"each producer keeps `window` requests in flight (1 = closed loop)",
                "latency = submit to result, over requests finished in the measured interval",
                "mean_batch and batch_fill come from Engine::metrics over the interval"};
  return j;
}

}  // namespace fanin::cli
