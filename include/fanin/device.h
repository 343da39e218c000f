// fanin/device.h: devices ("cpu", "cuda:0", ...) and their registry.
//
// Contract: Device objects are created on first use by Device::get and live
// until the process exits; references to them never dangle. Every member
// function is thread-safe. A device owns its allocator and its default stream
// pool; both are thread-safe too (see their headers).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace fanin {

namespace backend {
class Backend;
}
class Allocator;
class StreamPool;

// Which backend drives a device.
enum class DeviceType { kCpu, kCuda };

// "cpu" or "cuda".
const char* to_string(DeviceType type) noexcept;

// One compute device. Obtain with Device::get; never constructed by users.
class Device {
 public:
  // The device named `name`: "cpu" (= "cpu:0"), "cuda" (= "cuda:0") or
  // "cuda:N". "cpu:1".."cpu:7" are logical host devices: each its own
  // allocator and stream pool on the same cores and memory (to partition the
  // host among engine replicas, and to test multi-device code without GPUs).
  // Throws InvalidArgument for a malformed name and Unavailable when the
  // backend is not built, no such device is present, or N is out of range.
  static Device& get(std::string_view name);

  // The CPU device (always available).
  static Device& cpu();

  // True when `name` would resolve with get() without throwing.
  static bool is_available(std::string_view name) noexcept;

  // Names of every device that is present, e.g. {"cpu", "cuda:0"}.
  static std::vector<std::string> available();

  // Number of devices of `type` present (0 when the backend is not built;
  // 1 for the cpu, whatever its logical partitions).
  static int count(DeviceType type) noexcept;

  // The devices of a comma-separated list ("cuda:0,cuda:1", "cpu,cpu:1"),
  // in order, or "all": every CUDA device, or {cpu} when there is none.
  // Throws InvalidArgument for an empty item or a device named twice, and
  // what get() throws for a bad or absent one.
  static std::vector<Device*> list(std::string_view spec);

  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device();

  DeviceType type() const noexcept { return type_; }
  int index() const noexcept { return index_; }
  // "cpu" or "cuda:N".
  const std::string& name() const noexcept { return name_; }
  // Human-readable hardware description, e.g. "NVIDIA H100 80GB HBM3".
  std::string description() const;

  // The device's caching, stream-ordered allocator.
  Allocator& allocator() noexcept { return *allocator_; }

  // The device's default stream pool, created on first use: 32 slots (on
  // the CPU, one per hardware thread if that is more).
  StreamPool& stream_pool();

  // Throws DeviceError when the device no longer works: a sticky fault of
  // its CUDA context, or an injected one (set_fault). Waits for the work
  // queued on the device: meant for after a failure, not the hot path.
  void check_health() const;

  // Testing: makes every later host wait on this device (Stream::synchronize,
  // Event::synchronize) throw DeviceError naming `reason`, as an
  // asynchronous device fault would; an empty reason clears it.
  void set_fault(std::string reason);
  // Throws DeviceError naming `op` while a fault is set. Cheap when none is.
  void throw_if_faulted(const char* op) const;

  // Internal: the backend driving this device.
  backend::Backend& backend() const noexcept { return *backend_; }

 private:
  Device(DeviceType type, int index, backend::Backend& backend);
  friend class DeviceRegistry;

  DeviceType type_;
  int index_;
  std::string name_;
  backend::Backend* backend_;
  std::unique_ptr<Allocator> allocator_;
  std::once_flag pool_once_;
  std::unique_ptr<StreamPool> pool_;  // written once under pool_once_
  std::atomic<bool> faulted_{false};  // fault_reason_ is non-empty
  mutable std::mutex fault_mu_;       // guards fault_reason_
  std::string fault_reason_;
};

}  // namespace fanin
