// The CPU backend: worker-thread streams (cpu_stream.h), events on a
// generation counter, aligned host memory, and the kernels of kernels.h
// encoded as tasks.
#include <cblas.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "backends/backend.h"
#include "backends/cpu/cpu_stream.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/profile.h"
#include "core/check.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace fanin::backend::cpu {
namespace {

// Note [CPU events]
// recorded counts record() calls (encode side); completed is the highest
// record whose task has run. A waiter captures `recorded` at its call and
// waits for completed to reach it. Both live in shared state that tasks hold
// a reference to, so an Event may be destroyed while its tasks are queued.
struct EventState {
  std::mutex mu;  // guards recorded and completed
  std::condition_variable cv;
  uint64_t recorded = 0;
  uint64_t completed = 0;
};

class CpuEvent final : public EventImpl {
 public:
  void record(StreamImpl& stream) override {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      gen = ++st_->recorded;
    }
    static_cast<CpuStream&>(stream).encode([st = st_, gen] {
      {
        std::lock_guard<std::mutex> lock(st->mu);
        st->completed = std::max(st->completed, gen);
      }
      st->cv.notify_all();
    });
  }
  void make_wait(StreamImpl& stream) override {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      gen = st_->recorded;
    }
    if (gen == 0) return;
    static_cast<CpuStream&>(stream).encode([st = st_, gen] {
      std::unique_lock<std::mutex> lock(st->mu);
      st->cv.wait(lock, [&] { return st->completed >= gen; });
    });
  }
  void synchronize() const override {
    std::unique_lock<std::mutex> lock(st_->mu);
    const uint64_t gen = st_->recorded;
    st_->cv.wait(lock, [&] { return st_->completed >= gen; });
  }
  bool query() const noexcept override {
    std::lock_guard<std::mutex> lock(st_->mu);
    return st_->completed >= st_->recorded;
  }

 private:
  std::shared_ptr<EventState> st_ = std::make_shared<EventState>();
};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

CpuStream& cs(StreamImpl& s) { return static_cast<CpuStream&>(s); }

class CpuBackend final : public Backend {
 public:
  CpuBackend() {
    blas_kernels();  // Note [CPU kernel selection]: before the first BLAS call
    // One BLAS thread per call: parallelism comes from streams (one worker
    // thread each), not from inside a GEMM.
    openblas_set_num_threads(1);
  }

  DeviceType type() const noexcept override { return DeviceType::kCpu; }
  // Logical devices "cpu:0".."cpu:7" (Note [Logical cpu devices] in
  // docs/design.md): each has its own allocator and stream pool; all run on
  // the host's cores and share its memory.
  int device_count() const noexcept override { return 8; }
  std::string unavailable_reason() const override { return ""; }
  std::string describe(int) const override {
    return cpu_model_name() + " (" + std::to_string(std::thread::hardware_concurrency()) +
           " threads; " + kernels_summary() + ")";
  }

  std::unique_ptr<StreamImpl> create_stream(int) override { return std::make_unique<CpuStream>(); }
  std::unique_ptr<EventImpl> create_event(int) override { return std::make_unique<CpuEvent>(); }

  void* raw_alloc(int, size_t bytes) override {
    return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  void raw_free(int, void* ptr) noexcept override { std::free(ptr); }

  void copy_from_host(StreamImpl& s, void* dst, const void* src, size_t bytes) override {
    if (cs(s).capturing()) {  // Note [Copies in graphs]: read `src` at each replay
      cs(s).encode([dst, src, bytes] { std::memcpy(dst, src, bytes); });
      return;
    }
    // Stage: the caller may reuse `src` once we return.
    auto staged = std::shared_ptr<char[]>(new char[bytes]);
    std::memcpy(staged.get(), src, bytes);
    cs(s).encode([dst, staged, bytes] {
      ProfScope prof(ProfOp::kCopy);
      std::memcpy(dst, staged.get(), bytes);
    });
  }
  void copy_to_host(StreamImpl& s, void* dst, const void* src, size_t bytes) override {
    cs(s).encode([dst, src, bytes] {
      ProfScope prof(ProfOp::kCopy);
      std::memcpy(dst, src, bytes);
    });
  }
  void copy(StreamImpl& s, void* dst, const void* src, size_t bytes) override {
    cs(s).encode([dst, src, bytes] {
      ProfScope prof(ProfOp::kCopy);
      std::memmove(dst, src, bytes);
    });
  }
  void linear(StreamImpl& s, const LinearArgs& a) override {
    cs(s).encode([a] { cpu::linear(a); });
  }
  void layernorm(StreamImpl& s, const LayerNormArgs& a) override {
    cs(s).encode([a] { cpu::layernorm(a); });
  }
  void add(StreamImpl& s, const void* a, const void* b, void* out, int64_t n, int64_t nb,
           DType dtype) override {
    cs(s).encode([=] { cpu::add(a, b, out, n, nb, dtype); });
  }
  void unary(StreamImpl& s, Unary kind, const void* x, void* out, int64_t n,
             DType dtype) override {
    cs(s).encode([=] { cpu::unary(kind, x, out, n, dtype); });
  }
  void softmax(StreamImpl& s, const void* x, void* out, int64_t rows, int64_t cols,
               DType dtype) override {
    cs(s).encode([=] { cpu::softmax(x, out, rows, cols, dtype); });
  }
  void cast(StreamImpl& s, const void* x, DType from, void* out, DType to, int64_t n) override {
    cs(s).encode([=] { cpu::cast(x, from, out, to, n); });
  }
  bool packed_sequences() const noexcept override { return true; }
  bool mixed_linear() const noexcept override { return true; }
  DType linear_weight_dtype(DType act) const noexcept override {
    return act == DType::kF32 && cpu_matmul() == CpuMatmul::kBf16 ? DType::kBF16 : act;
  }
  void embedding(StreamImpl& s, const EmbeddingArgs& a) override {
    cs(s).encode([a] { cpu::embedding(a); });
  }
  void attention(StreamImpl& s, const AttentionArgs& a) override {
    cs(s).encode([a] { cpu::attention(a); });
  }
  void mean_pool(StreamImpl& s, const MeanPoolArgs& a) override {
    cs(s).encode([a] { cpu::mean_pool(a); });
  }
};

}  // namespace
}  // namespace fanin::backend::cpu

namespace fanin::backend {
Backend& cpu_backend() {
  static auto* backend = new cpu::CpuBackend;  // lives for the process (Note [Process lifetime])
  return *backend;
}
}  // namespace fanin::backend
