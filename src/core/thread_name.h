// Names the calling thread as `top -H`, `ps -L` and /proc/<pid>/task/*/comm
// show it, so that CPU time can be split by thread group (e.g.
// scripts/serve_cpu_profile.sh). Linux keeps 15 bytes; longer names are cut.
// Elsewhere it does nothing. Never throws.
#pragma once

#include <string>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace fanin::detail {

inline void set_thread_name(const std::string& name) noexcept {
#if defined(__linux__)
  char buf[16] = {};
  name.copy(buf, sizeof(buf) - 1);
  pthread_setname_np(pthread_self(), buf);
#else
  (void)name;
#endif
}

}  // namespace fanin::detail
