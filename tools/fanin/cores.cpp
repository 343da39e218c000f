// Cores this process may use: affinity mask, then cgroup CPU quota (cores.h).
#include "cores.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace fanin::cli {
namespace {

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ceil(quota / period) as a CPU count, for positive values.
std::optional<int> cpus_of(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  const long long n = (quota + period - 1) / period;
  return static_cast<int>(std::min<long long>(n, 1 << 20));
}

int affinity_cores() {
  // Up to 4096 CPUs; CPU_ALLOC sizes the mask beyond the fixed cpu_set_t.
  const int max_cpus = 4096;
  cpu_set_t* set = CPU_ALLOC(max_cpus);
  if (set == nullptr) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t size = CPU_ALLOC_SIZE(max_cpus);
  CPU_ZERO_S(size, set);
  int n = 0;
  if (sched_getaffinity(0, size, set) == 0) n = CPU_COUNT_S(size, set);
  CPU_FREE(set);
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(n, 1);
}

// The process's cgroup paths from /proc/self/cgroup: the v2 one ("0::/a/b")
// and the v1 one of the cpu controller ("4:cpu,cpuacct:/a/b").
struct CgroupPaths {
  std::optional<std::string> v2, v1_cpu;
};

CgroupPaths cgroup_paths() {
  CgroupPaths p;
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      p.v2 = path;
    } else {
      std::stringstream list(controllers);
      for (std::string c; std::getline(list, c, ',');)
        if (c == "cpu") p.v1_cpu = path;
    }
  }
  return p;
}

// The lowest limit from `leaf` up to the root of a hierarchy mounted at
// `mount`; `limit(dir)` reads one level.
template <typename Limit>
std::optional<int> lowest_on_path(const std::string& mount, std::string leaf, Limit limit) {
  std::optional<int> best;
  while (true) {
    if (std::optional<int> n = limit(mount + (leaf == "/" ? "" : leaf)))
      best = best ? std::min(*best, *n) : *n;
    if (leaf.empty() || leaf == "/") break;
    const size_t slash = leaf.find_last_of('/');
    leaf = slash == 0 || slash == std::string::npos ? "/" : leaf.substr(0, slash);
  }
  return best;
}

std::optional<int> cgroup_quota_cores() {
  const CgroupPaths p = cgroup_paths();
  std::optional<int> best;
  auto take = [&best](std::optional<int> n) {
    if (n) best = best ? std::min(*best, *n) : *n;
  };
  if (p.v2) {
    take(lowest_on_path("/sys/fs/cgroup", *p.v2, [](const std::string& dir) {
      std::optional<std::string> t = read_text(dir + "/cpu.max");
      return t ? parse_cpu_max(*t) : std::nullopt;
    }));
  }
  if (p.v1_cpu) {
    for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
      take(lowest_on_path(mount, *p.v1_cpu, [](const std::string& dir) {
        std::optional<std::string> q = read_text(dir + "/cpu.cfs_quota_us");
        std::optional<std::string> s = read_text(dir + "/cpu.cfs_period_us");
        return q && s ? parse_cfs_quota(*q, *s) : std::nullopt;
      }));
    }
  }
  return best;
}

}  // namespace

std::optional<int> parse_cpu_max(const std::string& text) {
  std::istringstream in(text);
  std::string quota;
  long long period = 0;
  if (!(in >> quota >> period) || quota == "max") return std::nullopt;
  try {
    size_t used = 0;
    const long long q = std::stoll(quota, &used);
    if (used != quota.size()) return std::nullopt;
    return cpus_of(q, period);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<int> parse_cfs_quota(const std::string& quota, const std::string& period) {
  long long q = 0, p = 0;
  std::istringstream qi(quota), pi(period);
  if (!(qi >> q) || !(pi >> p)) return std::nullopt;
  return cpus_of(q, p);
}

int usable_cores() {
  int n = affinity_cores();
  if (std::optional<int> quota = cgroup_quota_cores()) n = std::min(n, *quota);
  return std::max(n, 1);
}

}  // namespace fanin::cli
