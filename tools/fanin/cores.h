// tools/fanin/cores.h: how many cores this process may use, for the CPU
// backend's default worker count (`fanin embed`, `fanin serve --backend cpu`).
#pragma once

#include <optional>
#include <string>

namespace fanin::cli {

// The cores this process may run on: the CPUs in its affinity mask
// (sched_getaffinity, so taskset and cgroup cpusets count), lowered to the
// cgroup CPU quota rounded up (cgroup v2 cpu.max, v1 cpu.cfs_quota_us /
// cpu.cfs_period_us, the lowest on the way to the root) when one is set.
// At least 1. Thread-safe; reads /proc and /sys on every call.
int usable_cores();

// The CPUs a cgroup quota file grants, rounded up: cgroup v2 cpu.max
// ("max 100000" or "150000 100000" -> 2), or nothing for "max", an unreadable
// or malformed text. Exposed for tests.
std::optional<int> parse_cpu_max(const std::string& text);

// The same for cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us texts
// (quota -1: no limit).
std::optional<int> parse_cfs_quota(const std::string& quota, const std::string& period);

}  // namespace fanin::cli
