#include "fanin/device.h"

#include <algorithm>
#include <charconv>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/allocator.h"
#include "fanin/stream.h"

namespace fanin {

const char* to_string(DeviceType type) noexcept {
  return type == DeviceType::kCpu ? "cpu" : "cuda";
}

// Owns every Device. Intentionally never destroyed (Note [Process lifetime]
// in docs/concurrency.md): worker threads of other threads' leases may still
// run during static destruction, so devices must outlive them.
class DeviceRegistry {
 public:
  static DeviceRegistry& instance() {
    static auto* registry = new DeviceRegistry;
    return *registry;
  }

  Device& get(DeviceType type, int index) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& d : devices_) {
      if (d->type() == type && d->index() == index) return *d;
    }
    devices_.push_back(
        std::unique_ptr<Device>(new Device(type, index, backend::backend_for(type))));
    return *devices_.back();
  }

 private:
  std::mutex mu_;  // guards devices_ (append-only; Device objects never move)
  std::vector<std::unique_ptr<Device>> devices_;
};

namespace {

struct ParsedName {
  DeviceType type;
  int index;
};

ParsedName parse_name(std::string_view name) {
  std::string_view kind = name;
  int index = 0;
  if (auto colon = name.find(':'); colon != std::string_view::npos) {
    kind = name.substr(0, colon);
    std::string_view digits = name.substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    FANIN_CHECK(ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() &&
                    index >= 0,
                kInvalidArgument, "[Device::get] bad device index in '", name,
                "': expected e.g. 'cuda:0'");
  }
  if (kind == "cpu") return {DeviceType::kCpu, index};
  if (kind == "cuda") return {DeviceType::kCuda, index};
  FANIN_THROW(kInvalidArgument, "[Device::get] unknown device '", name,
              "': expected 'cpu', 'cuda' or 'cuda:N'");
}

}  // namespace

Device& Device::get(std::string_view name) {
  ParsedName p = parse_name(name);
  backend::Backend& be = backend::backend_for(p.type);
  int count = be.device_count();
  if (count == 0) {
    FANIN_THROW(kUnavailable, "[Device::get] '", name, "' is not available: ",
                be.unavailable_reason());
  }
  if (p.type == DeviceType::kCpu) {
    FANIN_CHECK(p.index < count, kUnavailable, "[Device::get] '", name,
                "' does not exist: the host has ", count,
                " logical cpu devices, 'cpu:0' (= 'cpu') to 'cpu:", count - 1, "'");
  }
  FANIN_CHECK(p.index < count, kUnavailable, "[Device::get] '", name, "' does not exist: ",
              count, " ", to_string(p.type), " device(s) present");
  return DeviceRegistry::instance().get(p.type, p.index);
}

Device& Device::cpu() { return DeviceRegistry::instance().get(DeviceType::kCpu, 0); }

std::vector<Device*> Device::list(std::string_view spec) {
  std::vector<Device*> out;
  if (spec == "all") {
    const int n = count(DeviceType::kCuda);
    for (int i = 0; i < n; ++i) out.push_back(&DeviceRegistry::instance().get(DeviceType::kCuda, i));
    if (out.empty()) out.push_back(&cpu());
    return out;
  }
  size_t start = 0;
  for (;;) {
    const size_t comma = spec.find(',', start);
    const std::string_view item =
        spec.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    FANIN_CHECK(!item.empty(), kInvalidArgument, "[Device::list] empty device name in '", spec,
                "': expected e.g. 'cuda:0,cuda:1' or 'all'");
    Device& d = get(item);
    for (Device* seen : out)
      FANIN_CHECK(seen != &d, kInvalidArgument, "[Device::list] '", spec, "' names ", d.name(),
                  " twice");
    out.push_back(&d);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

bool Device::is_available(std::string_view name) noexcept {
  try {
    Device::get(name);
    return true;
  } catch (...) {
    return false;
  }
}

int Device::count(DeviceType type) noexcept {
  // The host is one device however many logical cpu:N partitions it offers.
  return type == DeviceType::kCpu ? 1 : backend::backend_for(type).device_count();
}

std::vector<std::string> Device::available() {
  std::vector<std::string> names{"cpu"};
  for (int i = 0; i < count(DeviceType::kCuda); ++i) names.push_back("cuda:" + std::to_string(i));
  return names;
}

Device::Device(DeviceType type, int index, backend::Backend& backend)
    : type_(type),
      index_(index),
      name_(type == DeviceType::kCpu
                ? (index == 0 ? std::string("cpu") : std::string("cpu:") + std::to_string(index))
                : std::string("cuda:") + std::to_string(index)),
      backend_(&backend),
      allocator_(std::make_unique<Allocator>(*this)) {}

Device::~Device() = default;

std::string Device::description() const { return backend_->describe(index_); }

void Device::set_fault(std::string reason) {
  std::lock_guard<std::mutex> lock(fault_mu_);
  fault_reason_ = std::move(reason);
  faulted_.store(!fault_reason_.empty(), std::memory_order_release);
}

void Device::throw_if_faulted(const char* op) const {
  if (!faulted_.load(std::memory_order_acquire)) return;
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(fault_mu_);
    reason = fault_reason_;
  }
  if (reason.empty()) return;  // cleared meanwhile
  FANIN_THROW(kDeviceError, "[", op, "] device ", name_, " failed: ", reason);
}

void Device::check_health() const {
  backend_->check_device(index_);
  throw_if_faulted("Device::check_health");
}

StreamPool& Device::stream_pool() {
  std::call_once(pool_once_, [this] {
    // A CPU stream runs on its own thread, and an engine runs one worker per
    // core there, each holding a lease: at least a slot per hardware thread.
    PoolOptions o;
    if (type_ == DeviceType::kCpu)
      o.slots = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), o.slots, 4096);
    pool_ = std::make_unique<StreamPool>(*this, o);
  });
  return *pool_;
}

namespace backend {
Backend& backend_for(DeviceType type) {
  return type == DeviceType::kCpu ? cpu_backend() : cuda_backend();
}
}  // namespace backend

}  // namespace fanin
