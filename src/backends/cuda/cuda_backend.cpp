// The CUDA backend: devices found through the CUDA runtime, streams
// (cuda_stream.h), events (cuda_event.h), cudaMalloc'd memory, cuBLASLt
// linear (matmul.h) and the own kernels of kernels/. Design notes:
// README.md beside this file.
//
// Threading: CudaBackend holds only what it computes once (the device probe,
// the settings), behind function-local statics; every member may be called
// from any thread. Encode-side entry points take the stream's device for
// the call (DeviceGuard): threads may drive streams of any device.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_event.h"
#include "backends/cuda/cuda_stream.h"
#include "backends/cuda/kernels/kernels.h"
#include "core/check.h"

namespace fanin::backend::cuda {
namespace {

struct Probe {
  int count = 0;
  std::string reason;  // why count is 0
};

// Asks the runtime once. Without a driver or a GPU (CI, developer machines)
// cudaGetDeviceCount fails or finds none; that is not an error for fanin,
// only "cuda is unavailable" with the runtime's words for why.
const Probe& probe() noexcept {
  static const Probe result = [] {
    Probe p;
    int count = 0;
    try {
      FANIN_CUDA_CHECK(cudaGetDeviceCount(&count));
      p.count = count;
      if (count == 0) p.reason = "the CUDA runtime found no CUDA device";
    } catch (const Error& e) {
      p.count = 0;
      p.reason = e.message() + " (is an NVIDIA GPU and driver present?)";
    }
    return p;
  }();
  return result;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "1") == 0;
}

const StreamSettings& settings() {
  static const StreamSettings s = [] {
    StreamSettings r;
    r.allow_tf32 = env_flag("FANIN_ALLOW_TF32");
    r.blocking_sync = env_flag("FANIN_CUDA_BLOCKING_SYNC");
    r.debug = env_flag("FANIN_CUDA_DEBUG");
    if (const char* sm = std::getenv("FANIN_CUDA_SM_TARGET")) {
      char* end = nullptr;
      const long v = std::strtol(sm, &end, 10);
      FANIN_CHECK(end != sm && *end == '\0' && v >= 0 && v <= 1024, kInvalidArgument,
                  "[cuda] FANIN_CUDA_SM_TARGET must be a number of SMs in 0..1024, got '", sm, "'");
      r.sm_target = static_cast<int>(v);
    }
    if (const char* mb = std::getenv("FANIN_CUDA_WORKSPACE_MB")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(mb, &end, 10);
      FANIN_CHECK(end != mb && *end == '\0' && v <= 4096, kInvalidArgument,
                  "[cuda] FANIN_CUDA_WORKSPACE_MB must be a number of MiB in 0..4096, got '", mb,
                  "'");
      r.workspace_bytes = static_cast<size_t>(v) << 20;
    }
    return r;
  }();
  return s;
}

CudaStream& cs(StreamImpl& s) { return static_cast<CudaStream&>(s); }

class CudaBackend final : public Backend {
 public:
  DeviceType type() const noexcept override { return DeviceType::kCuda; }
  int device_count() const noexcept override { return probe().count; }
  std::string unavailable_reason() const override { return probe().reason; }

  void check_device(int device) override {
    DeviceGuard guard(device);
    // A sticky error (illegal address, trap, ECC) is returned by every call
    // from then on; a device-wide synchronize also surfaces one still in
    // flight.
    FANIN_CUDA_CHECK(cudaDeviceSynchronize());
  }

  std::string describe(int device) const override {
    cudaDeviceProp prop{};
    FANIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    int driver = 0;
    FANIN_CUDA_CHECK(cudaDriverGetVersion(&driver));
    const double gib = static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f", gib);
    return detail::str(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount,
                       " SMs, ", mem, " GiB, driver ", driver / 1000, ".", (driver % 1000) / 10,
                       ")");
  }

  std::unique_ptr<StreamImpl> create_stream(int device) override {
    return std::make_unique<CudaStream>(device, settings());
  }
  std::unique_ptr<EventImpl> create_event(int device) override {
    return std::make_unique<CudaEvent>(device);
  }

  void* raw_alloc(int device, size_t bytes) override {
    DeviceGuard guard(device);
    // Relaxed: the allocator may allocate while this thread captures a
    // graph (cudaMalloc is not a stream operation, so it is not captured).
    RelaxedCaptureMode relaxed;
    void* ptr = nullptr;
    if (FANIN_CUDA_CHECK(cudaMalloc(&ptr, bytes), cudaErrorMemoryAllocation) != cudaSuccess) {
      // Clear the (non-sticky) error so later checks do not see it.
      FANIN_CUDA_CHECK(cudaGetLastError(), cudaErrorMemoryAllocation);
      return nullptr;
    }
    return ptr;
  }
  void raw_free(int device, void* ptr) noexcept override {
    if (ptr == nullptr) return;
    best_effort([&] {
      DeviceGuard guard(device);
      RelaxedCaptureMode relaxed;
      FANIN_CUDA_CHECK(cudaFree(ptr));
    });
  }

  void* host_alloc(size_t bytes) override {
    RelaxedCaptureMode relaxed;
    void* ptr = nullptr;
    if (FANIN_CUDA_CHECK(cudaHostAlloc(&ptr, bytes == 0 ? 1 : bytes, cudaHostAllocPortable),
                         cudaErrorMemoryAllocation) != cudaSuccess) {
      FANIN_CUDA_CHECK(cudaGetLastError(), cudaErrorMemoryAllocation);
      FANIN_THROW(kOutOfMemory, "[HostBuffer] cannot allocate ", bytes,
                  " bytes of page-locked host memory");
    }
    return ptr;
  }
  void host_free(void* ptr) noexcept override {
    if (ptr == nullptr) return;
    best_effort([&] {
      RelaxedCaptureMode relaxed;
      FANIN_CUDA_CHECK(cudaFreeHost(ptr));
    });
  }

  void copy_from_host(StreamImpl& s, void* dst, const void* src, size_t bytes) override {
    DeviceGuard guard(cs(s).device());
    cs(s).copy_from_host(dst, src, bytes);
  }
  void copy_to_host(StreamImpl& s, void* dst, const void* src, size_t bytes) override {
    DeviceGuard guard(cs(s).device());
    cs(s).copy_to_host(dst, src, bytes);
  }
  void copy(StreamImpl& s, void* dst, const void* src, size_t bytes) override {
    DeviceGuard guard(cs(s).device());
    FANIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cs(s).encode()));
  }

  void linear(StreamImpl& s, const LinearArgs& a) override {
    DeviceGuard guard(cs(s).device());
    cs(s).matmul().linear(cs(s).encode(), a);
  }
  void layernorm(StreamImpl& s, const LayerNormArgs& a) override {
    DeviceGuard guard(cs(s).device());
    launch_layernorm(cs(s).encode(), a);
  }
  void add(StreamImpl& s, const void* a, const void* b, void* out, int64_t n, int64_t nb,
           DType dtype) override {
    DeviceGuard guard(cs(s).device());
    launch_add(cs(s).encode(), a, b, out, n, nb, dtype);
  }
  void unary(StreamImpl& s, Unary kind, const void* x, void* out, int64_t n, DType dtype) override {
    DeviceGuard guard(cs(s).device());
    launch_unary(cs(s).encode(), kind, x, out, n, dtype);
  }
  void softmax(StreamImpl& s, const void* x, void* out, int64_t rows, int64_t cols,
               DType dtype) override {
    DeviceGuard guard(cs(s).device());
    launch_softmax(cs(s).encode(), x, out, rows, cols, dtype);
  }
  void cast(StreamImpl& s, const void* x, DType from, void* out, DType to, int64_t n) override {
    DeviceGuard guard(cs(s).device());
    launch_cast(cs(s).encode(), x, from, out, to, n);
  }
  void embedding(StreamImpl& s, const EmbeddingArgs& a) override {
    DeviceGuard guard(cs(s).device());
    launch_embedding(cs(s).encode(), a);
  }
  void attention(StreamImpl& s, const AttentionArgs& a) override {
    DeviceGuard guard(cs(s).device());
    launch_attention(cs(s).encode(), a);
  }
  void mean_pool(StreamImpl& s, const MeanPoolArgs& a) override {
    DeviceGuard guard(cs(s).device());
    launch_mean_pool(cs(s).encode(), a);
  }
};

}  // namespace
}  // namespace fanin::backend::cuda

namespace fanin::backend {
Backend& cuda_backend() {
  // Lives for the process (Note [Process lifetime]): streams of exiting
  // threads may still call it during static destruction.
  static auto* backend = new cuda::CudaBackend;
  return *backend;
}
}  // namespace fanin::backend
