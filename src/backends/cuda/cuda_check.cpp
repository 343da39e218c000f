#include "backends/cuda/cuda_check.h"

#include <cstring>

#include "core/check.h"

namespace fanin::backend::cuda {
namespace {

// "src/backends/cuda/x.cpp" rather than the build machine's absolute path.
const char* short_path(const char* file) {
  const char* p = std::strstr(file, "src/backends/");
  return p != nullptr ? p : file;
}

}  // namespace

void throw_status(cudaError_t status, const char* call, const char* file, int line) {
  // Reset the thread's last-error slot so that a non-sticky failure (bad
  // launch configuration, out of memory) does not resurface in later checks.
  (void)cudaGetLastError();
  const std::string message =
      detail::str("[cuda] ", call, " failed: ", cudaGetErrorName(status), " (",
                  cudaGetErrorString(status), ") at ", short_path(file), ":", line);
  if (status == cudaErrorMemoryAllocation) detail::throw_error(ErrorCode::kOutOfMemory, message);
  detail::throw_error(ErrorCode::kDeviceError, message);
}

void throw_status(cublasStatus_t status, const char* call, const char* file, int line) {
  const std::string message =
      detail::str("[cuda] ", call, " failed: ", cublasLtGetStatusName(status), " (",
                  cublasLtGetStatusString(status), ") at ", short_path(file), ":", line);
  if (status == CUBLAS_STATUS_ALLOC_FAILED) detail::throw_error(ErrorCode::kOutOfMemory, message);
  detail::throw_error(ErrorCode::kDeviceError, message);
}

DeviceGuard::DeviceGuard(int device) {
  int current = 0;
  FANIN_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) {
    FANIN_CUDA_CHECK(cudaSetDevice(device));
    restore_ = current;
  }
}

DeviceGuard::~DeviceGuard() {
  if (restore_ >= 0) best_effort([&] { FANIN_CUDA_CHECK(cudaSetDevice(restore_)); });
}

RelaxedCaptureMode::RelaxedCaptureMode() {
  FANIN_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&saved_));
}

RelaxedCaptureMode::~RelaxedCaptureMode() {
  best_effort([&] { FANIN_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&saved_)); });
}

}  // namespace fanin::backend::cuda
