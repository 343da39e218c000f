// fanin/event.h: a marker in a stream's work that other streams and the host
// can wait on.
//
// Contract: record() is encoding work, so it follows the one-encoder rule of
// the stream it is recorded on (it opens an implicit encoder). Stream::wait,
// synchronize() and query() may be called from any thread, concurrently with
// record(); they refer to the most recent record() that happened before them.
// An event never recorded counts as complete. Waiting is per event: fanin
// never synchronizes a whole device on the hot path.
#pragma once

#include <memory>

namespace fanin {

class Device;
class Stream;
namespace backend {
class EventImpl;
}

// A reusable event on one device.
class Event {
 public:
  explicit Event(Device& device);
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event();

  // Marks the point after all work encoded so far on `stream`. Throws
  // InvalidArgument if the stream is on another device, ConcurrentEncoding
  // if another thread is encoding into it.
  void record(Stream& stream);
  // Blocks the calling thread until the recorded point is reached.
  void synchronize() const;
  // True when the recorded point is reached (or nothing was recorded).
  bool query() const;

  Device& device() const noexcept { return *device_; }
  backend::EventImpl& impl() const noexcept { return *impl_; }

 private:
  Device* device_;
  std::unique_ptr<backend::EventImpl> impl_;
};

}  // namespace fanin
