// Linked instead of the CUDA backend when fanin is built without CUDA
// (FANIN_CUDA=OFF or no nvcc): the "cuda" device kind exists but reports
// that it is not available.
#include "backends/backend.h"
#include "core/check.h"

namespace fanin::backend {
namespace {

class NoCuda final : public Backend {
 public:
  DeviceType type() const noexcept override { return DeviceType::kCuda; }
  int device_count() const noexcept override { return 0; }
  std::string unavailable_reason() const override {
    return "fanin was built without CUDA (configure with -DFANIN_CUDA=ON on a machine with nvcc)";
  }
  std::string describe(int) const override { return "unavailable"; }
  [[noreturn]] static void fail() {
    FANIN_THROW(kUnavailable, "[cuda] fanin was built without CUDA");
  }
  std::unique_ptr<StreamImpl> create_stream(int) override { fail(); }
  std::unique_ptr<EventImpl> create_event(int) override { fail(); }
  void* raw_alloc(int, size_t) override { fail(); }
  void raw_free(int, void*) noexcept override {}
  void copy_from_host(StreamImpl&, void*, const void*, size_t) override { fail(); }
  void copy_to_host(StreamImpl&, void*, const void*, size_t) override { fail(); }
  void copy(StreamImpl&, void*, const void*, size_t) override { fail(); }
  void linear(StreamImpl&, const LinearArgs&) override { fail(); }
  void layernorm(StreamImpl&, const LayerNormArgs&) override { fail(); }
  void add(StreamImpl&, const void*, const void*, void*, int64_t, int64_t, DType) override {
    fail();
  }
  void unary(StreamImpl&, Unary, const void*, void*, int64_t, DType) override { fail(); }
  void softmax(StreamImpl&, const void*, void*, int64_t, int64_t, DType) override { fail(); }
  void cast(StreamImpl&, const void*, DType, void*, DType, int64_t) override { fail(); }
};

}  // namespace

Backend& cuda_backend() {
  static auto* backend = new NoCuda;
  return *backend;
}

}  // namespace fanin::backend
