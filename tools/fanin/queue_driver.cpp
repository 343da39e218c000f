#include "queue_driver.h"

#include "fanin/device.h"

#include <atomic>
#include <cstdio>
#include <chrono>
#include <deque>
#include <thread>

namespace fanin::cli {

QueueRun drive_queue(Engine& engine, int producers, int window, double warmup, double seconds,
                     const std::function<std::future<Response>(int p, uint64_t k)>& submit,
                     const std::function<void(int p, uint64_t k)>& measured) {
  using SteadyClock = std::chrono::steady_clock;
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(producers));
  std::atomic<uint64_t> rejected{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      struct InFlight {
        SteadyClock::time_point t0;
        uint64_t k;
        std::future<Response> f;
      };
      std::deque<InFlight> inflight;
      uint64_t next = 0;
      auto submit_one = [&] {
        for (;;) {
          try {
            const auto t0 = SteadyClock::now();
            inflight.push_back({t0, next, submit(p, next)});
            ++next;
            return;
          } catch (const Error& e) {
            if (e.code() != ErrorCode::kQueueFull) throw;
            rejected.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
          }
        }
      };
      while (!stop.load(std::memory_order_relaxed)) {
        while (static_cast<int>(inflight.size()) < window) submit_one();
        InFlight r = std::move(inflight.front());
        inflight.pop_front();
        r.f.get();
        if (measuring.load(std::memory_order_relaxed)) {
          lat[static_cast<size_t>(p)].push_back(
              std::chrono::duration<double, std::micro>(SteadyClock::now() - r.t0).count());
          if (measured) measured(p, r.k);
        }
      }
      for (auto& r : inflight) r.f.get();
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
  r.rate = static_cast<double>(r.requests) / r.elapsed_s;
  r.latency = summarize(all);
  r.rejected = rejected.load();
  r.batches = after.batches - before.batches;
  const uint64_t done = after.completed - before.completed;
  r.mean_batch = r.batches ? static_cast<double>(done) / static_cast<double>(r.batches) : 0.0;
  r.fill.resize(after.batch_fill.size());
  for (size_t i = 0; i < r.fill.size(); ++i) r.fill[i] = after.batch_fill[i] - before.batch_fill[i];
  return r;
}

std::vector<std::vector<Device*>> bench_device_sets(const std::string& devices,
                                                    const std::string& backend) {
  if (devices.empty()) return {{&Device::get(backend)}};
  std::vector<Device*> all = Device::list(devices);
  if (all.size() == 1) return {all};
  return {{all.front()}, all};
}

std::string device_names(const std::vector<Device*>& devices) {
  std::string out;
  for (Device* d : devices) out += (out.empty() ? "" : ",") + d->name();
  return out;
}

nlohmann::json devices_json(const std::vector<Device*>& devices) {
  nlohmann::json out = nlohmann::json::array();
  for (Device* d : devices) out.push_back({{"name", d->name()}, {"description", d->description()}});
  return out;
}

nlohmann::json speedups(const nlohmann::json& first, const nlohmann::json& all, const char* key) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < first.size() && i < all.size(); ++i) {
    const double base = first[i][key].get<double>();
    out.push_back({{"producers", all[i]["producers"]},
                   {"first_device", base},
                   {"all_devices", all[i][key]},
                   {"speedup", base > 0 ? all[i][key].get<double>() / base : 0.0}});
  }
  return out;
}

nlohmann::json device_set_json(const std::vector<Device*>& set, const nlohmann::json& runs,
                               const Engine& engine) {
  nlohmann::json per_device = nlohmann::json::array();
  for (const auto& d : engine.metrics().devices)
    per_device.push_back({{"name", d.name}, {"batches", d.batches}, {"requests", d.requests}});
  return {{"devices", devices_json(set)}, {"results", runs}, {"per_device", per_device}};
}

void put_device_sets(nlohmann::json& j, const std::vector<std::vector<Device*>>& sets,
                     const nlohmann::json& scaling, const char* key, const char* label) {
  j["device"] = devices_json(sets.front()).front();
  j["devices"] = devices_json(sets.back());
  j["results"] = scaling.back()["results"];  // on every device of the last set
  if (sets.size() < 2) return;
  j["scaling"] = scaling;
  j["speedup"] = speedups(scaling.front()["results"], scaling.back()["results"], key);
  for (const auto& s : j["speedup"])
    std::fprintf(stderr, "%s: %4d producers  %zu devices / 1: %.2fx\n", label,
                 s["producers"].get<int>(), sets.back().size(), s["speedup"].get<double>());
}

}  // namespace fanin::cli
