#include "fanin/host_buffer.h"

#include <utility>

#include "backends/backend.h"
#include "fanin/device.h"

namespace fanin {

HostBuffer::HostBuffer(Device& device, size_t bytes)
    : device_(&device), data_(device.backend().host_alloc(bytes)), size_(bytes) {}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : device_(std::exchange(other.device_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    device_ = std::exchange(other.device_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

HostBuffer::~HostBuffer() { reset(); }

void HostBuffer::reset() noexcept {
  if (data_ != nullptr) device_->backend().host_free(data_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace fanin
