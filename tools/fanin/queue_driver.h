// tools/fanin/queue_driver.h: the producer side of `fanin bench --mode queue`
// (MLP rows and minilm sentences alike).
//
// Note [Bench queue mode]
// Each producer keeps `window` requests in flight (1 = closed loop): it
// waits for its oldest future, records that request's latency (submit to
// result), and submits a new one; a QueueFull rejection is retried after a
// yield and counted. Throughput counts results inside the measured interval.
// The mean batch size and the fill histogram come from the engine's own
// metrics, taken as differences over the interval.
//
// Note [Bench device sets]
// With --devices A,B,... queue mode runs twice: on A alone, then on every
// listed device (one model replica each, load_replicas), the same producer
// counts each time, so that the JSON holds the scaling ratio measured in one
// run ("scaling": per producer count, rate on all / rate on the first).
// Without --devices it runs once on --backend.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <functional>
#include <future>
#include <vector>

#include "bench_direct.h"
#include "fanin/engine.h"

namespace fanin::cli {

struct QueueRun {
  int producers = 0;
  uint64_t requests = 0;      // finished inside the measured interval
  uint64_t rejected = 0;      // QueueFull retries
  uint64_t batches = 0;       // run inside the interval
  double elapsed_s = 0, rate = 0, mean_batch = 0;
  LatencySummary latency;
  std::vector<uint64_t> fill;  // batch_fill difference over the interval
};

// submit(p, k): producer p's k-th request. measured(p, k): called on
// producer p's thread for each of its requests that finished inside the
// measured interval (may be empty).
QueueRun drive_queue(Engine& engine, int producers, int window, double warmup, double seconds,
                     const std::function<std::future<Response>(int p, uint64_t k)>& submit,
                     const std::function<void(int p, uint64_t k)>& measured = {});

// Note [Bench device sets]: the device sets to run, in order.
std::vector<std::vector<Device*>> bench_device_sets(const std::string& devices,
                                                    const std::string& backend);
// "cuda:0,cuda:1".
std::string device_names(const std::vector<Device*>& devices);
// [{"name", "description"}, ...].
nlohmann::json devices_json(const std::vector<Device*>& devices);
// Per producer count of `all`: `key` of `all` / `key` of `first`.
nlohmann::json speedups(const nlohmann::json& first, const nlohmann::json& all,
                        const char* key);

// One device set's JSON: its devices, its runs, and what each device served
// (from the engine's metrics, after drain).
nlohmann::json device_set_json(const std::vector<Device*>& set, const nlohmann::json& runs,
                               const Engine& engine);
// Writes "device", "devices", "results" (the last set's runs) and, with
// several sets, "scaling" and "speedup" (by `key`) into `j`; prints the
// speedups prefixed by `label`.
void put_device_sets(nlohmann::json& j, const std::vector<std::vector<Device*>>& sets,
                     const nlohmann::json& scaling, const char* key, const char* label);

}  // namespace fanin::cli
