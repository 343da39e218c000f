// Micro-benchmark of the Engine's queue alone (issue 5, item 9): a no-op
// model (forward returns its input), so what is measured is submit, batch
// formation, the host copies of a batch, the stream round trip and the
// resolution of each request. Each iteration of a producer thread submits a
// burst of kBurst requests and waits until all of them have resolved, so
// items_per_second is "submits per second, resolved". Producers: 1, 4, 16
// threads; workers: 1 and 2 on one device, or one on each of two logical
// cpu devices (the multi-device queue: lanes and routing); futures and
// callbacks.
//   build/<preset>/bench/fanin_queue_bench [--benchmark_min_time=2]
#include <benchmark/benchmark.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "fanin/fanin.h"

namespace {

using namespace fanin;

constexpr int kBurst = 512;     // requests per producer per iteration
constexpr int64_t kWidth = 4;   // floats per request

// forward(x) = x: no device work at all.
class NoopModel final : public Model {
 public:
  explicit NoopModel(Device& device) : device_(&device) {}
  std::string name() const override { return "noop"; }
  Device& device() const override { return *device_; }
  Shape input_shape() const override { return {kWidth}; }
  Shape output_shape() const override { return {kWidth}; }
  DType dtype() const override { return DType::kF32; }
  Tensor forward(const Tensor& x, Stream&) const override { return x; }

 private:
  Device* device_;
};

// One engine per benchmark run, made by thread 0 before the timing loop
// (the library starts all threads' loops together) and read after it.
std::unique_ptr<Engine> g_engine;

EngineOptions options(int workers) {
  EngineOptions o;
  o.workers = workers;
  o.max_batch_size = 256;
  o.max_queue_delay = std::chrono::microseconds(0);  // take what is queued; bursts fill batches
  o.max_queue_length = 1 << 20;
  return o;
}

// range(0) workers per device on range(1) devices ("cpu", "cpu:1").
std::unique_ptr<Engine> make_engine(const benchmark::State& state) {
  std::vector<std::shared_ptr<const Model>> replicas;
  for (int d = 0; d < state.range(1); ++d)
    replicas.push_back(std::make_shared<NoopModel>(Device::get("cpu:" + std::to_string(d))));
  return std::make_unique<Engine>(replicas, options(static_cast<int>(state.range(0))));
}

void report(benchmark::State& state) {
  if (state.thread_index() != 0) return;
  const EngineMetrics m = g_engine->metrics();
  uint64_t requests = 0;
  for (size_t n = 0; n < m.batch_fill.size(); ++n) requests += n * m.batch_fill[n];
  state.counters["mean_batch"] =
      m.batches == 0 ? 0.0 : static_cast<double>(requests) / static_cast<double>(m.batches);
  state.counters["failed"] = static_cast<double>(m.failed);
  g_engine.reset();
}

void BM_SubmitFuture(benchmark::State& state) {
  if (state.thread_index() == 0)
    g_engine = make_engine(state);
  const std::vector<float> input(kWidth, 1.0f);
  std::vector<std::future<Response>> futures;
  futures.reserve(kBurst);
  for (auto _ : state) {
    for (int i = 0; i < kBurst; ++i) futures.push_back(g_engine->submit(input));
    for (auto& f : futures) benchmark::DoNotOptimize(f.get());
    futures.clear();
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
  report(state);
}

void BM_SubmitCallback(benchmark::State& state) {
  if (state.thread_index() == 0)
    g_engine = make_engine(state);
  const std::vector<float> input(kWidth, 1.0f);
  // Static storage: a worker may still be inside notify_one() of the last
  // callback when this thread's function returns.
  struct alignas(64) Counter {
    std::atomic<int> value{0};
  };
  static Counter counters[256];
  std::atomic<int>& outstanding = counters[state.thread_index() % 256].value;
  for (auto _ : state) {
    outstanding.store(kBurst, std::memory_order_relaxed);
    for (int i = 0; i < kBurst; ++i) {
      g_engine->submit(input, {}, [&outstanding](Response r, const Error*) {
        benchmark::DoNotOptimize(r);
        if (outstanding.fetch_sub(1, std::memory_order_acq_rel) == 1) outstanding.notify_one();
      });
    }
    for (int left = outstanding.load(std::memory_order_acquire); left != 0;
         left = outstanding.load(std::memory_order_acquire)) {
      outstanding.wait(left, std::memory_order_acquire);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
  report(state);
}

// Every configuration both benchmarks run.
void configurations(benchmark::internal::Benchmark* b) {
  b->ArgNames({"workers", "devices"})
      ->Args({1, 1})
      ->Args({2, 1})
      ->Args({1, 2})
      ->Threads(1)
      ->Threads(4)
      ->Threads(16)
      ->UseRealTime()
      ->MeasureProcessCPUTime();
}

BENCHMARK(BM_SubmitFuture)->Apply(configurations);
BENCHMARK(BM_SubmitCallback)->Apply(configurations);

}  // namespace

BENCHMARK_MAIN();
