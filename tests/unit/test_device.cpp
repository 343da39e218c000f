// Device: the registry of devices ("cpu", "cuda:N").
#include <gtest/gtest.h>

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

TEST(Device, DefaultStreamPoolHas32SlotsAndIsCreatedOnce) {
  StreamPool& pool = Device::cpu().stream_pool();
  EXPECT_EQ(pool.size(), 32);
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
