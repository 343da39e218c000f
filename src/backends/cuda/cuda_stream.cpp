#include "backends/cuda/cuda_stream.h"

#include <cstring>
#include <utility>

#include "backends/cuda/cuda_check.h"
#include "core/check.h"

namespace fanin::backend::cuda {
namespace {

// An instantiated CUDA graph (Note [Capture modes] in README.md). Replays
// on any stream of its device; it reuses the buffers and the cuBLASLt
// workspace of the stream that captured it, so replay it on that stream
// (or while that stream is idle). A cudaGraphExec_t must not be launched
// from two threads at once; the core gives each stream its own graphs.
class CudaGraph final : public GraphImpl {
 public:
  CudaGraph(int device, GraphExecHandle exec) : device_(device), exec_(std::move(exec)) {}

  void launch(StreamImpl& stream) override {
    auto& s = static_cast<CudaStream&>(stream);
    FANIN_CHECK(s.device() == device_, kInvalidArgument, "[cuda graph] captured on cuda:", device_,
                ", launched on a stream of cuda:", s.device());
    DeviceGuard guard(device_);
    FANIN_CUDA_CHECK(cudaGraphLaunch(exec_.get(), s.encode()));
  }

 private:
  const int device_;
  GraphExecHandle exec_;
};

}  // namespace

CudaStream::CudaStream(int device, const StreamSettings& settings)
    : device_(device), matmul_(device, settings) {
  DeviceGuard guard(device);
  FANIN_CUDA_CHECK(cudaStreamCreateWithFlags(stream_.out(), cudaStreamNonBlocking));
  const unsigned flags =
      cudaEventDisableTiming | (settings.blocking_sync ? cudaEventBlockingSync : 0u);
  for (auto& event : ring_) FANIN_CUDA_CHECK(cudaEventCreateWithFlags(event.out(), flags));
}

CudaStream::~CudaStream() {
  best_effort([&] {
    DeviceGuard guard(device_);
    if (capturing_) {
      // An abandoned capture: end it so the stream can be destroyed.
      GraphHandle graph;
      best_effort([&] { FANIN_CUDA_CHECK(cudaStreamEndCapture(stream_.get(), graph.out())); });
    }
    // The workspace and events must outlive the work that uses them.
    RelaxedCaptureMode relaxed;
    FANIN_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  });
  // Members go in reverse order: matmul_ (plans, handle, workspace), the
  // ring, then the stream; each owner restores nothing and never throws.
}

void CudaStream::keep_error(std::exception_ptr error) const noexcept {
  std::lock_guard<std::mutex> lock(ring_mu_);
  if (!error_) error_ = std::move(error);
}

void CudaStream::mark_completed(uint64_t value) const noexcept {
  uint64_t seen = completed_.load(std::memory_order_relaxed);
  while (seen < value && !completed_.compare_exchange_weak(seen, value, std::memory_order_release,
                                                           std::memory_order_relaxed)) {
  }
}

void CudaStream::end_encoding() {
  // Called from CommandBuffer::end_one, which is noexcept: never throw. A
  // failed record leaves the work pending and the error for synchronize().
  if (capturing_) return;
  const uint64_t s = state_.load(std::memory_order_relaxed);
  if ((s & 1) == 0) return;
  const uint64_t value = (s >> 1) + 1;
  std::lock_guard<std::mutex> lock(ring_mu_);
  try {
    DeviceGuard guard(device_);
    FANIN_CUDA_CHECK(cudaEventRecord(slot(value), stream_.get()));
  } catch (...) {
    if (!error_) error_ = std::current_exception();
    return;
  }
  state_.store(value << 1, std::memory_order_release);
}

bool CudaStream::fence_done(uint64_t value) const noexcept {
  if (value <= completed_.load(std::memory_order_acquire)) return true;
  if (value > recorded()) return false;  // covers work not yet submitted
  std::unique_lock<std::mutex> lock(ring_mu_);
  const uint64_t answer = answering_value(value, recorded());
  try {
    RelaxedCaptureMode relaxed;  // legal even on a thread that is capturing
    if (FANIN_CUDA_CHECK(cudaEventQuery(slot(answer)), cudaErrorNotReady) == cudaErrorNotReady)
      return false;
  } catch (...) {
    // The device failed: the work will never finish normally. Report it as
    // done so that nobody waits forever; synchronize() rethrows the error.
    if (!error_) error_ = std::current_exception();
    lock.unlock();
    mark_completed(value);
    return true;
  }
  lock.unlock();
  mark_completed(answer);
  return true;
}

std::exception_ptr CudaStream::wait_recorded(uint64_t value) const noexcept {
  if (value == 0 || value <= completed_.load(std::memory_order_acquire)) return nullptr;
  cudaEvent_t event;
  uint64_t answer;
  {
    std::lock_guard<std::mutex> lock(ring_mu_);
    answer = answering_value(value, recorded());
    event = slot(answer);
  }
  // Outside the lock: if the slot is recorded again meanwhile, the wait
  // covers later work of this stream, which still implies `answer`.
  try {
    RelaxedCaptureMode relaxed;
    FANIN_CUDA_CHECK(cudaEventSynchronize(event));
  } catch (...) {
    mark_completed(value);
    return std::current_exception();
  }
  mark_completed(answer);
  return nullptr;
}

void CudaStream::wait_fence(uint64_t value) noexcept {
  const uint64_t rec = recorded();
  if (std::exception_ptr error = wait_recorded(value < rec ? value : rec)) keep_error(error);
}

void CudaStream::synchronize() {
  // Waits on the last fence event rather than cudaStreamSynchronize: that
  // is exactly the submitted work, and it stays legal while the stream's
  // owner is capturing (synchronizing a capturing stream would invalidate
  // the capture).
  std::exception_ptr error = wait_recorded(recorded());
  {
    std::lock_guard<std::mutex> lock(ring_mu_);
    if (error_) error = std::exchange(error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

bool CudaStream::query() const noexcept { return fence_done(recorded()); }

void CudaStream::wait_or_throw(uint64_t value) {
  if (value > recorded()) end_encoding();  // submit what the value covers
  const uint64_t rec = recorded();
  std::exception_ptr error = wait_recorded(value < rec ? value : rec);
  {
    std::lock_guard<std::mutex> lock(ring_mu_);
    if (error_) error = std::exchange(error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

char* CudaStream::take_slot(unsigned* index) {
  if (!staging_) staging_ = PinnedBuffer(kSlots * kSlotBytes);
  const unsigned i = next_slot_;
  next_slot_ = (i + 1) % kSlots;
  if (!fence_done(slot_fence_[i])) wait_or_throw(slot_fence_[i]);
  *index = i;
  return staging_.get() + i * kSlotBytes;
}

namespace {

bool is_page_locked(const void* p) {
  cudaPointerAttributes attr{};
  RelaxedCaptureMode relaxed;
  FANIN_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  return attr.type == cudaMemoryTypeHost;
}

}  // namespace

void CudaStream::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (!capturing_ && bytes <= kSlotBytes) {
    unsigned i;
    char* slot = take_slot(&i);
    std::memcpy(slot, src, bytes);
    FANIN_CUDA_CHECK(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, encode()));
    slot_fence_[i] = fence();
    return;
  }
  if (capturing_) {
    // Note [Copies in graphs]: the graph reads `src` at every replay, which
    // CUDA can only do from page-locked memory.
    FANIN_CHECK(is_page_locked(src), kInvalidArgument,
                "[copy_from_host] inside a graph capture the source must be page-locked host "
                "memory (fanin::HostBuffer); got pageable memory at ", src);
    FANIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, encode()));
    return;
  }
  // From pageable memory cudaMemcpyAsync has consumed `src` when it returns
  // (the driver stages it). From page-locked memory the DMA reads `src`
  // later, so copy it to pageable memory first.
  if (is_page_locked(src)) {
    std::unique_ptr<char[]> pageable(new char[bytes]);
    std::memcpy(pageable.get(), src, bytes);
    FANIN_CUDA_CHECK(cudaMemcpyAsync(dst, pageable.get(), bytes, cudaMemcpyHostToDevice, encode()));
    return;
  }
  FANIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, encode()));
}

bool CudaStream::dst_page_locked(const void* dst) {
  if (dst != last_dst_) {
    last_dst_pinned_ = is_page_locked(dst);
    last_dst_ = dst;
  }
  return last_dst_pinned_;
}

void CudaStream::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (capturing_) {
    FANIN_CHECK(is_page_locked(dst), kInvalidArgument,
                "[copy_to_host] inside a graph capture the destination must be page-locked host "
                "memory (fanin::HostBuffer); got pageable memory at ", dst);
  }
  if (capturing_ || bytes > kSlotBytes || dst_page_locked(dst)) {
    // Asynchronous into page-locked memory; into pageable memory the driver
    // returns once the copy is done.
    FANIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, encode()));
    return;
  }
  unsigned i;
  char* slot = take_slot(&i);
  FANIN_CUDA_CHECK(cudaMemcpyAsync(slot, src, bytes, cudaMemcpyDeviceToHost, encode()));
  slot_fence_[i] = fence();
  wait_or_throw(slot_fence_[i]);
  std::memcpy(dst, slot, bytes);
}

void CudaStream::begin_capture() {
  FANIN_CHECK(!capturing_, kInvalidArgument,
              "[cuda begin_capture] the stream is already capturing a graph");
  end_encoding();  // the fence covers work enqueued before the capture
  DeviceGuard guard(device_);
  FANIN_CUDA_CHECK(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

std::unique_ptr<GraphImpl> CudaStream::end_capture() {
  FANIN_CHECK(capturing_, kInvalidArgument, "[cuda end_capture] the stream is not capturing");
  DeviceGuard guard(device_);
  GraphHandle graph;
  try {
    // Fails with cudaErrorStreamCaptureInvalidated if something illegal
    // happened during the capture (the capture still ends), and with
    // cudaErrorStreamCaptureWrongThread if another thread began it (the
    // capture goes on; only that thread can end it).
    FANIN_CUDA_CHECK(cudaStreamEndCapture(stream_.get(), graph.out()));
  } catch (...) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    best_effort([&] { FANIN_CUDA_CHECK(cudaStreamIsCapturing(stream_.get(), &status)); });
    capturing_ = status != cudaStreamCaptureStatusNone;
    throw;
  }
  capturing_ = false;
  GraphExecHandle exec;
  FANIN_CUDA_CHECK(cudaGraphInstantiate(exec.out(), graph.get(), 0));
  // Upload now so that the first launch is as cheap as the later ones.
  FANIN_CUDA_CHECK(cudaGraphUpload(exec.get(), encode()));
  return std::make_unique<CudaGraph>(device_, std::move(exec));
}

}  // namespace fanin::backend::cuda
