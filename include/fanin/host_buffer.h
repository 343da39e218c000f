// fanin/host_buffer.h: host memory a device copies from and to fastest.
//
// Contract: on CUDA devices the memory is page-locked, so copies are true
// asynchronous DMA and may be captured into graphs (Note [Copies in graphs]
// in docs/concurrency.md): a copy captured from or to a HostBuffer reads or
// writes it at every replay. On the CPU it is ordinary aligned memory.
// A HostBuffer is move-only; its memory is freed at destruction (the caller
// must make sure no stream or graph still uses it). Distinct buffers may be
// used by different threads at once.
#pragma once

#include <cstddef>

namespace fanin {

class Device;

class HostBuffer {
 public:
  HostBuffer() = default;
  // `bytes` of host memory suited to `device`. Throws OutOfMemory.
  HostBuffer(Device& device, size_t bytes);
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer();

  void* data() const noexcept { return data_; }
  template <typename T>
  T* as() const noexcept {
    return static_cast<T*>(data_);
  }
  size_t size() const noexcept { return size_; }

 private:
  void reset() noexcept;
  Device* device_ = nullptr;
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace fanin
