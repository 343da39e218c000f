// Device: the registry of devices ("cpu", "cuda:N").
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::throws_error;

TEST(Device, CpuIsAlwaysThere) {
  Device& cpu = Device::cpu();
  EXPECT_EQ(cpu.type(), DeviceType::kCpu);
  EXPECT_EQ(cpu.index(), 0);
  EXPECT_EQ(cpu.name(), "cpu");
  EXPECT_FALSE(cpu.description().empty());
  EXPECT_TRUE(Device::is_available("cpu"));
  EXPECT_EQ(Device::count(DeviceType::kCpu), 1);
  EXPECT_STREQ(to_string(DeviceType::kCpu), "cpu");
  EXPECT_STREQ(to_string(DeviceType::kCuda), "cuda");
}

TEST(Device, NamesResolveToOneObject) {
  EXPECT_EQ(&Device::get("cpu"), &Device::cpu());
  EXPECT_EQ(&Device::get("cpu:0"), &Device::cpu());
  EXPECT_EQ(&Device::get("cpu").allocator(), &Device::cpu().allocator());
}

TEST(Device, LogicalCpuDevicesAreSeparateDevicesOnTheHost) {
  Device& c1 = Device::get("cpu:1");
  EXPECT_EQ(c1.type(), DeviceType::kCpu);
  EXPECT_EQ(c1.index(), 1);
  EXPECT_EQ(c1.name(), "cpu:1");
  EXPECT_NE(&c1, &Device::cpu());
  EXPECT_NE(&c1.allocator(), &Device::cpu().allocator());
  EXPECT_NE(&c1.stream_pool(), &Device::cpu().stream_pool());
  EXPECT_EQ(&Device::get("cpu:7"), &Device::get("cpu:7"));
  // The host still counts as one device, listed once.
  EXPECT_EQ(Device::count(DeviceType::kCpu), 1);
  // Work runs there as on "cpu".
  StreamLease lease = c1.stream_pool().acquire();
  Tensor a = Tensor::from_vector({1.0f, 2.0f}, {2}, lease.stream());
  Tensor b = ops::add(a, a, lease.stream());
  EXPECT_EQ(b.to_vector(lease.stream()), (std::vector<float>{2.0f, 4.0f}));
}

TEST(Device, ListParsesNamesInOrder) {
  std::vector<Device*> d = Device::list("cpu:1,cpu");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0]->name(), "cpu:1");
  EXPECT_EQ(d[1], &Device::cpu());
  std::vector<Device*> all = Device::list("all");
  ASSERT_FALSE(all.empty());
  if (Device::count(DeviceType::kCuda) == 0) {
    EXPECT_EQ(all, std::vector<Device*>{&Device::cpu()});
  } else {
    EXPECT_EQ(all.size(), static_cast<size_t>(Device::count(DeviceType::kCuda)));
    for (Device* x : all) EXPECT_EQ(x->type(), DeviceType::kCuda);
  }
}

TEST(Device, ListRejectsDuplicatesAndEmptyItems) {
  EXPECT_TRUE(throws_error([] { Device::list("cpu,cpu:0"); }, ErrorCode::kInvalidArgument,
                           {"[Device::list]", "'cpu,cpu:0'", "cpu twice"}));
  for (const char* spec : {"", "cpu,", ",cpu", "cpu,,cpu:1"})
    EXPECT_TRUE(throws_error([&] { Device::list(spec); }, ErrorCode::kInvalidArgument,
                             {"[Device::list]", "empty device name"}))
        << spec;
  EXPECT_TRUE(throws_error([] { Device::list("cpu,tpu"); }, ErrorCode::kInvalidArgument,
                           {"[Device::get]", "'tpu'"}));
}

TEST(Device, InjectedFaultFailsHostWaitsUntilCleared) {
  Device& d = Device::get("cpu:6");
  StreamLease lease = d.stream_pool().acquire();
  d.set_fault("test fault 42");
  EXPECT_TRUE(throws_error([&] { lease->synchronize(); }, ErrorCode::kDeviceError,
                           {"[Stream::synchronize]", "cpu:6", "test fault 42"}));
  // Other devices are not affected.
  StreamLease other = Device::cpu().stream_pool().acquire();
  EXPECT_NO_THROW(other->synchronize());
  EXPECT_TRUE(throws_error([&] { d.check_health(); }, ErrorCode::kDeviceError,
                           {"[Device::check_health]", "cpu:6", "test fault 42"}));
  d.set_fault("");
  EXPECT_NO_THROW(lease->synchronize());
  EXPECT_NO_THROW(d.check_health());
}

TEST(Device, ConcurrentGetReturnsTheSameDevice) {
  std::vector<Device*> seen(16, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) threads.emplace_back([&, i] { seen[i] = &Device::get("cpu"); });
  for (auto& t : threads) t.join();
  for (Device* d : seen) EXPECT_EQ(d, &Device::cpu());
}

TEST(Device, BadNamesAreInvalidArguments) {
  for (const char* name : {"gpu", "", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:0x", "cpu:0:0"}) {
    EXPECT_TRUE(throws_error([&] { Device::get(name); }, ErrorCode::kInvalidArgument,
                             {"[Device::get]", std::string("'") + name + "'"}))
        << name;
    EXPECT_FALSE(Device::is_available(name)) << name;
  }
}

TEST(Device, AvailableListsCpuFirstAndCudaWhenPresent) {
  std::vector<std::string> names = Device::available();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "cpu");
  const int n_cuda = Device::count(DeviceType::kCuda);
  EXPECT_EQ(names.size(), static_cast<size_t>(1 + n_cuda));
  for (const std::string& n : names) EXPECT_TRUE(Device::is_available(n)) << n;
  EXPECT_EQ(Device::is_available("cuda"), n_cuda > 0);
  EXPECT_EQ(Device::is_available("cuda:0"), n_cuda > 0);
  EXPECT_FALSE(Device::is_available("cuda:" + std::to_string(n_cuda)));
}

TEST(Device, CudaOutOfRangeIsUnavailable) {
  const int n = Device::count(DeviceType::kCuda);
  const std::string name = "cuda:" + std::to_string(n);
  EXPECT_TRUE(throws_error([&] { Device::get(name); }, ErrorCode::kUnavailable,
                           {"[Device::get]", "'" + name + "'"}));
}

TEST(Device, DefaultStreamPoolHasASlotPerHardwareThreadAndIsCreatedOnce) {
  StreamPool& pool = Device::cpu().stream_pool();
  // 32, or one per hardware thread where there are more (a CPU engine runs a
  // worker per core, each holding a lease).
  EXPECT_EQ(pool.size(), std::max(32, static_cast<int>(std::thread::hardware_concurrency())));
  EXPECT_EQ(&pool.device(), &Device::cpu());
  EXPECT_EQ(&Device::cpu().stream_pool(), &pool);
  std::vector<StreamPool*> seen(8, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { seen[i] = &Device::cpu().stream_pool(); });
  for (auto& t : threads) t.join();
  for (StreamPool* p : seen) EXPECT_EQ(p, &pool);
}

}  // namespace
}  // namespace fanin
