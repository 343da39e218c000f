// The CUDA backend's stream: a non-blocking cudaStream_t with its own
// cuBLASLt handle and workspace, a ring of fence events, and graph capture.
//
// Threading (backend.h): encode-side members (encode(), matmul(),
// end_encoding, begin_capture, end_capture, and graph launches onto this
// stream) are called by one thread at a time, ordered by the core's
// one-encoder rule (Note [One encoder]); fence(), fence_done(), wait_fence(),
// synchronize() and query() may be called from any thread at any time.
//
// Note [CUDA fences]
// A fence value v >= 1 names the v-th fence event recorded on the stream.
// state_ packs (recorded << 1) | pending: `recorded` counts fence events
// recorded so far, `pending` says that work was enqueued after the last one.
// Only the encode side writes state_; readers load it once, so they never
// see a torn pair. fence() = recorded + pending: the next record covers any
// pending work. end_encoding() records the next event (cudaEventRecord) when
// work is pending, so wait_fence(fence()) right after end_encoding() waits
// for exactly the work encoded so far.
// Events live in a ring of kRing slots, value v in slot (v - 1) % kRing. A
// value older than the ring is answered through the oldest value still in
// it: the stream runs in order, so a later fence's completion implies an
// earlier one's. completed_ remembers the highest value seen complete, so
// most fence_done() calls return without a CUDA call or a lock.
// Work encoded during graph capture is not real work: it sets nothing, and
// end_encoding() records no event while capturing (a record would become a
// graph node). Launching a graph onto the stream marks work pending.
// Errors met while polling or waiting (noexcept paths) are kept in error_
// and rethrown by the next synchronize().
//
// Note [Host staging]
// Host copies through pageable memory serialize threads inside the driver
// (measured on the H100: README.md), so each stream stages small copies
// (<= kSlotBytes) itself, in kSlots page-locked slots allocated on first
// use. A slot remembers the fence covering its last copy and is reused only
// once that fence passed.
// copy_from_host: memcpy into a slot, then an asynchronous copy from it, so
// the caller's buffer (pageable or not) is free when the call returns.
// copy_to_host into pageable memory: copy into a slot, submit, wait for its
// fence, memcpy out; the call returns with `dst` written, as the driver's
// pageable copy would, but without its lock. Into page-locked memory (cudaPointerGetAttributes,
// cached for the last pointer: a stale answer costs speed, never
// correctness), for large copies and while capturing, the copies go
// straight to cudaMemcpyAsync.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>

#include "backends/backend.h"
#include "backends/cuda/cuda_handles.h"
#include "backends/cuda/cuda_settings.h"
#include "backends/cuda/matmul.h"

namespace fanin::backend::cuda {

class CudaStream final : public StreamImpl {
 public:
  // Creates the stream and its resources on `device`. Throws OutOfMemory /
  // DeviceError.
  CudaStream(int device, const StreamSettings& settings);
  ~CudaStream() override;

  int device() const noexcept { return device_; }
  // Encode side: the stream to enqueue on, noting that work follows (Note
  // [CUDA fences]). Call before enqueueing.
  cudaStream_t encode() noexcept {
    if (!capturing_) {
      const uint64_t s = state_.load(std::memory_order_relaxed);
      if ((s & 1) == 0) state_.store(s | 1, std::memory_order_release);
    }
    return stream_.get();
  }
  // Encode side: this stream's cuBLASLt state.
  Matmul& matmul() noexcept { return matmul_; }
  // Encode side: host <-> device copies (Note [Host staging]). `src` may be
  // reused when copy_from_host returns; copy_to_host's `dst` is written by
  // the time the stream reaches the copy (for pageable `dst`, on return).
  void copy_from_host(void* dst, const void* src, size_t bytes);
  void copy_to_host(void* dst, const void* src, size_t bytes);

  void begin_capture() override;
  std::unique_ptr<GraphImpl> end_capture() override;
  void end_encoding() override;
  uint64_t fence() const noexcept override {
    const uint64_t s = state_.load(std::memory_order_acquire);
    return (s >> 1) + (s & 1);
  }
  bool fence_done(uint64_t value) const noexcept override;
  void wait_fence(uint64_t value) noexcept override;
  void synchronize() override;
  bool query() const noexcept override;

 private:
  static constexpr uint64_t kRing = 32;
  static constexpr size_t kSlotBytes = size_t{256} << 10;
  static constexpr unsigned kSlots = 4;

  uint64_t recorded() const noexcept { return state_.load(std::memory_order_acquire) >> 1; }
  // The ring slot answering for value v (1 <= v <= recorded), and the value
  // it answers for: v itself, or the oldest value still in the ring.
  uint64_t answering_value(uint64_t v, uint64_t recorded) const noexcept {
    const uint64_t oldest = recorded > kRing ? recorded - kRing + 1 : 1;
    return v > oldest ? v : oldest;
  }
  cudaEvent_t slot(uint64_t value) const noexcept { return ring_[(value - 1) % kRing].get(); }
  void mark_completed(uint64_t value) const noexcept;
  void keep_error(std::exception_ptr error) const noexcept;
  // Blocks until fence `value` (<= recorded) passed; returns the error met.
  std::exception_ptr wait_recorded(uint64_t value) const noexcept;
  // Encode side: waits for fence `value`, submitting pending work first if
  // the value covers it; throws the first kept error.
  void wait_or_throw(uint64_t value);
  // Encode side: a free staging slot (Note [Host staging]); sets *index.
  char* take_slot(unsigned* index);
  // Encode side: whether `dst` is page-locked, cached for the last pointer.
  bool dst_page_locked(const void* dst);

  const int device_;
  StreamHandle stream_;  // destroyed after the members below
  std::array<EventHandle, kRing> ring_;
  Matmul matmul_;
  bool capturing_ = false;  // encode side only
  // Note [Host staging], encode side only.
  PinnedBuffer staging_;                       // kSlots * kSlotBytes, on first use
  std::array<uint64_t, kSlots> slot_fence_{};  // fence covering each slot's last copy
  unsigned next_slot_ = 0;
  const void* last_dst_ = nullptr;  // dst_page_locked's cache
  bool last_dst_pinned_ = false;

  std::atomic<uint64_t> state_{0};  // Note [CUDA fences]; written by the encode side only
  mutable std::atomic<uint64_t> completed_{0};  // highest fence value known complete

  // Guards the slot <-> value association: held around cudaEventRecord of a
  // slot in end_encoding() (with the state_ update that publishes it) and
  // around the slot lookup + cudaEventQuery in fence_done(), so a query
  // answers for the value it computed. Also guards error_. Never held while
  // blocking (wait_fence and synchronize wait outside it).
  mutable std::mutex ring_mu_;
  mutable std::exception_ptr error_;  // first asynchronous error not yet reported
};

}  // namespace fanin::backend::cuda
