#include "fanin/device.h"

#include <charconv>
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
  if (kind == "cpu") {
    FANIN_CHECK(index == 0, kUnavailable, "[Device::get] '", name,
                "': there is one cpu device, 'cpu' (= 'cpu:0')");
    return {DeviceType::kCpu, 0};
  }
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
  FANIN_CHECK(p.index < count, kUnavailable, "[Device::get] '", name, "' does not exist: ",
              count, " ", to_string(p.type), " device(s) present");
  return DeviceRegistry::instance().get(p.type, p.index);
}

Device& Device::cpu() { return DeviceRegistry::instance().get(DeviceType::kCpu, 0); }

bool Device::is_available(std::string_view name) noexcept {
  try {
    Device::get(name);
    return true;
  } catch (...) {
    return false;
  }
}

int Device::count(DeviceType type) noexcept { return backend::backend_for(type).device_count(); }

std::vector<std::string> Device::available() {
  std::vector<std::string> names{"cpu"};
  for (int i = 0; i < count(DeviceType::kCuda); ++i) names.push_back("cuda:" + std::to_string(i));
  return names;
}

Device::Device(DeviceType type, int index, backend::Backend& backend)
    : type_(type),
      index_(index),
      name_(type == DeviceType::kCpu ? std::string("cpu")
                                     : std::string("cuda:") + std::to_string(index)),
      backend_(&backend),
      allocator_(std::make_unique<Allocator>(*this)) {}

Device::~Device() = default;

std::string Device::description() const { return backend_->describe(index_); }

StreamPool& Device::stream_pool() {
  std::call_once(pool_once_, [this] { pool_ = std::make_unique<StreamPool>(*this); });
  return *pool_;
}

namespace backend {
Backend& backend_for(DeviceType type) {
  return type == DeviceType::kCpu ? cpu_backend() : cuda_backend();
}
}  // namespace backend

}  // namespace fanin
