// The CUDA backend's settings, read once per process from the environment
// (cuda_backend.cpp; README.md lists them). Immutable after start-up.
#pragma once

#include <cstddef>

namespace fanin::backend::cuda {

struct StreamSettings {
  size_t workspace_bytes = size_t{4} << 20;  // FANIN_CUDA_WORKSPACE_MB
  bool allow_tf32 = false;                   // FANIN_ALLOW_TF32=1
  bool blocking_sync = false;                // FANIN_CUDA_BLOCKING_SYNC=1
  int sm_target = 0;                         // FANIN_CUDA_SM_TARGET=N (0: all SMs)
  bool debug = false;                        // FANIN_CUDA_DEBUG=1
};

}  // namespace fanin::backend::cuda
