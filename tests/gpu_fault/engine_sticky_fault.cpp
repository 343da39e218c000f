// A real, sticky CUDA fault under an Engine over {cuda:0, cpu:1} (issue 7),
// the cpu replica slowed so that the routing prefers the GPU:
// a model whose forward, once poisoned, launches a kernel that writes
// through a null pointer. The CUDA context of cuda:0 is then dead for the
// rest of the process. Checked: the failing batch fails with DeviceError,
// cuda:0 leaves rotation (metric, log line), every later request succeeds
// on the cpu device, and drain and teardown finish without crashing.
// Exit 0 pass, 1 fail, 77 skip (no GPU).
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/cuda_stream.h"
#include "fanin/fanin.h"

void launch_write_through_null(cudaStream_t stream);  // null_write.cu

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// A model that runs `before(stream)` and then the wrapped model's forward:
// the GPU replica launches the faulting kernel there once poisoned, the
// cpu replica sleeps so that the routing prefers the GPU.
class Wrapped final : public fanin::Model {
 public:
  Wrapped(std::shared_ptr<fanin::Model> inner, std::function<void(fanin::Stream&)> before)
      : inner_(std::move(inner)), before_(std::move(before)) {}
  std::string name() const override { return inner_->name(); }
  fanin::Device& device() const override { return inner_->device(); }
  fanin::Shape input_shape() const override { return inner_->input_shape(); }
  fanin::Shape output_shape() const override { return inner_->output_shape(); }
  fanin::DType dtype() const override { return inner_->dtype(); }
  fanin::Tensor forward(const fanin::Tensor& x, fanin::Stream& stream) const override {
    before_(stream);
    return inner_->forward(x, stream);
  }

 private:
  std::shared_ptr<fanin::Model> inner_;
  std::function<void(fanin::Stream&)> before_;
};

}  // namespace

int main() {
  using namespace fanin;
  if (!Device::is_available("cuda:0")) {
    std::printf("no CUDA device: gpu.engine_sticky_fault runs on the GPU machine\n");
    return 77;
  }
  MlpConfig cfg;
  cfg.dims = {64, 128, 64};
  std::atomic<bool> poisoned{false};
  auto gpu = std::make_shared<Wrapped>(Mlp::random(cfg, 5, Device::get("cuda:0")),
                                       [&](Stream& stream) {
                                         if (!poisoned.load()) return;
                                         auto& cs = static_cast<backend::cuda::CudaStream&>(
                                             stream.impl());
                                         launch_write_through_null(cs.encode());
                                       });
  auto cpu = std::make_shared<Wrapped>(Mlp::random(cfg, 5, Device::get("cpu:1")), [](Stream&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  std::vector<std::string> log;
  EngineOptions opt;
  opt.workers = 1;
  opt.max_batch_size = 1;
  opt.max_queue_delay = std::chrono::microseconds(0);
  opt.log = [&](const std::string& line) {
    std::printf("log: %s\n", line.c_str());
    log.push_back(line);  // one worker fails at a time: appended once
  };
  std::vector<float> x(64, 0.25f);
  {
    Engine engine(std::vector<std::shared_ptr<const Model>>{gpu, cpu}, opt);
    std::vector<float> reference;
    int ok_before = 0;
    for (int i = 0; i < 50; ++i) {
      Response r = engine.submit(x).get();
      if (reference.empty()) reference = r.output;
      bool same = r.output.size() == reference.size();
      for (size_t k = 0; same && k < r.output.size(); ++k)
        same = std::fabs(r.output[k] - reference[k]) < 1e-3f;
      ok_before += same ? 1 : 0;
    }
    EngineMetrics m0 = engine.metrics();
    check(ok_before == 50, "50 requests before the fault agree across devices (" +
                               std::to_string(ok_before) + ")");
    check(m0.devices[0].requests > 0 && m0.devices[1].requests > 0,
          "both devices served before the fault (cuda:0 " + std::to_string(m0.devices[0].requests) +
              ", cpu:1 " + std::to_string(m0.devices[1].requests) + ")");

    poisoned.store(true);
    int device_errors = 0, ok_after = 0, other = 0;
    for (int i = 0; i < 200; ++i) {
      try {
        Response r = engine.submit(x).get();
        ok_after += r.output.size() == reference.size() ? 1 : 0;
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kDeviceError) {
          ++device_errors;
          if (device_errors == 1) std::printf("first error: %s\n", e.what());
        } else {
          ++other;
          std::printf("unexpected error: %s\n", e.what());
        }
      }
    }
    EngineMetrics m = engine.metrics();
    check(device_errors == 1, "exactly one request (the GPU's in-flight batch) failed: " +
                                  std::to_string(device_errors));
    check(other == 0, "no other errors");
    check(ok_after == 199, "the other 199 succeeded: " + std::to_string(ok_after));
    check(m.device_failures == 1 && !m.devices[0].healthy && m.devices[1].healthy,
          "cuda:0 is out of rotation, cpu:1 in");
    check(log.size() == 1 && log[0].find("device cuda:0 failed and is out of rotation") !=
                                 std::string::npos,
          "one log line names cuda:0");
    check(engine.prometheus().find("fanin_device_healthy{device=\"cuda:0\"} 0") !=
              std::string::npos,
          "prometheus shows cuda:0 unhealthy");
    check(engine.drain(std::chrono::seconds(30)), "drain finishes");
  }
  std::printf("%s\n", failures == 0 ? "PASS" : "FAILED");
  return failures == 0 ? 0 : 1;
}
