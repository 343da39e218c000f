// `fanin bench --mode queue`: producers submit single MLP rows to an Engine
// (Note [Bench queue mode] in queue_driver.h).
#include <cstdio>

#include "bench_more.h"
#include "cli.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/model.h"
#include "queue_driver.h"

namespace fanin::cli {

using json = nlohmann::json;

json run_queue_bench(const BenchOptions& o) {
  MlpConfig config;
  config.dims.assign(o.dims.begin(), o.dims.end());
  config.dtype = parse_dtype(o.dtype);
  EngineOptions eo;
  eo.workers = o.workers;
  eo.max_batch_size = o.max_batch;
  eo.max_queue_delay = std::chrono::microseconds(o.max_delay_us);
  eo.adaptive_queue_delay = !o.fixed_delay;
  eo.warmup = true;  // graphs, plans and routing estimates before the first request
  eo.use_graphs = o.graphs;
  if (o.graphs)
    for (int b = 1; b <= o.max_batch; b *= 2) eo.preferred_batch_sizes.push_back(b);
  if (o.graphs && eo.preferred_batch_sizes.back() != o.max_batch)
    eo.preferred_batch_sizes.push_back(o.max_batch);

  // Note [Bench device sets]: the first device alone, then all of them.
  const std::vector<std::vector<Device*>> sets = bench_device_sets(o.devices, o.backend);
  json scaling = json::array();
  std::shared_ptr<const Mlp> first_model;
  for (const std::vector<Device*>& set : sets) {
    // Same seed on every device: the same weights everywhere.
    auto replicas = load_replicas<Model>(
        set, [&](Device& d) { return Mlp::random(config, 42, d); });
    if (!first_model) first_model = std::static_pointer_cast<const Mlp>(replicas.front());
    Engine engine(replicas, eo);
    const std::string names = device_names(set);
    std::fprintf(stderr,
                 "fanin bench queue: %s on %s, %d worker(s) per device, max batch %d, delay %d "
                 "us%s\n",
                 first_model->name().c_str(), names.c_str(), o.workers, o.max_batch,
                 o.max_delay_us, o.graphs ? ", graphs per padded size" : "");
    json runs = json::array();
    for (int p : o.producers) {
      std::vector<std::vector<float>> inputs(static_cast<size_t>(p));
      for (int q = 0; q < p; ++q) {
        inputs[q].resize(static_cast<size_t>(config.dims.front()));
        for (size_t i = 0; i < inputs[q].size(); ++i)
          inputs[q][i] = static_cast<float>((i * 7 + static_cast<size_t>(q)) % 13) * 0.1f;
      }
      QueueRun r = drive_queue(engine, p, o.window, o.warmup_seconds, o.seconds,
                               [&](int q, uint64_t) { return engine.submit(inputs[q]); });
      std::fprintf(stderr,
                   "fanin bench queue: [%s] %3d producers  %10.0f req/s  p50 %8.1f us  p99 %8.1f "
                   "us  p999 %8.1f us  mean batch %.1f\n",
                   names.c_str(), p, r.rate, r.latency.p50_us, r.latency.p99_us,
                   r.latency.p999_us, r.mean_batch);
      runs.push_back({{"producers", p},
                      {"window", o.window},
                      {"requests", r.requests},
                      {"elapsed_s", r.elapsed_s},
                      {"rps", r.rate},
                      {"p50_us", r.latency.p50_us},
                      {"p99_us", r.latency.p99_us},
                      {"p999_us", r.latency.p999_us},
                      {"mean_us", r.latency.mean_us},
                      {"mean_batch", r.mean_batch},
                      {"queue_full_retries", r.rejected},
                      {"batch_fill", r.fill}});
    }
    engine.drain();
    scaling.push_back(device_set_json(set, runs, engine));
  }
  json j;
  j["model"] = {{"name", first_model->name()}, {"dims", config.dims}, {"dtype", o.dtype},
                {"weight_bytes", first_model->weight_bytes()}};
  j["engine"] = {{"workers_per_device", o.workers}, {"max_batch_size", o.max_batch},
                 {"max_queue_delay_us", o.max_delay_us}, {"adaptive_queue_delay", !o.fixed_delay},
                 {"graphs", o.graphs}};
  put_device_sets(j, sets, scaling, "rps", "fanin bench queue");
  j["notes"] = {"each producer keeps `window` requests in flight (1 = closed loop)",
                "latency = submit to result, over requests finished in the measured interval",
                "mean_batch and batch_fill come from Engine::metrics over the interval",
                "with several devices: results = all devices; scaling = first device alone, "
                "then all, same producers; speedup = rps(all) / rps(first)"};
  return j;
}

}  // namespace fanin::cli
