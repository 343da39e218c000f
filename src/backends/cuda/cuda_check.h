// The CUDA backend's one checking macro, and the small guards every entry
// point uses. Internal to src/backends/cuda.
//
// FANIN_CUDA_CHECK(call, tolerated...) evaluates a CUDA runtime or cuBLASLt
// call. Success, or one of the tolerated statuses (e.g. cudaErrorNotReady for
// a query), is returned; anything else throws fanin::Error naming the call:
//   "[cuda] cudaMalloc(&ptr, bytes) failed: cudaErrorInvalidValue (invalid
//    argument) at src/backends/cuda/cuda_backend.cpp:120"
// with code OutOfMemory for allocation failures and DeviceError otherwise.
//
// Thread-safety: everything here is stateless or thread-local.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

namespace fanin::backend::cuda {

[[noreturn]] void throw_status(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_status(cublasStatus_t status, const char* call, const char* file, int line);

template <typename... Tolerated>
inline cudaError_t check(cudaError_t status, const char* call, const char* file, int line,
                         Tolerated... tolerated) {
  if (status == cudaSuccess || ((status == tolerated) || ...)) [[likely]]
    return status;
  throw_status(status, call, file, line);
}

template <typename... Tolerated>
inline cublasStatus_t check(cublasStatus_t status, const char* call, const char* file, int line,
                            Tolerated... tolerated) {
  if (status == CUBLAS_STATUS_SUCCESS || ((status == tolerated) || ...)) [[likely]]
    return status;
  throw_status(status, call, file, line);
}

// Runs `f` (which checks with FANIN_CUDA_CHECK) and drops any error: for
// destructors and other noexcept clean-up, where there is nobody to tell and
// the process may be exiting (cudaErrorCudartUnloading).
template <typename F>
void best_effort(F&& f) noexcept {
  try {
    f();
  } catch (...) {
  }
}

// RAII: makes `device` current for the scope and restores the previous
// device if it differed. Threads may drive streams of any device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard();

 private:
  int restore_ = -1;  // device to restore, -1 when unchanged
};

// RAII: puts the calling thread in cudaStreamCaptureModeRelaxed for the
// scope (Note [Capture modes] in README.md). Host-side calls that CUDA deems
// unsafe during capture (cudaMalloc, cudaFree, event queries and waits) then
// neither fail nor invalidate a capture this thread has open.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode();
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;
  ~RelaxedCaptureMode();

 private:
  cudaStreamCaptureMode saved_ = cudaStreamCaptureModeRelaxed;
};

}  // namespace fanin::backend::cuda

#define FANIN_CUDA_CHECK(call, ...) \
  ::fanin::backend::cuda::check((call), #call, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
