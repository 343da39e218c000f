#include "backends/cuda/cuda_handles.h"

#include "backends/cuda/cuda_check.h"

namespace fanin::backend::cuda {

void destroy_stream(cudaStream_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cudaStreamDestroy(h)); });
}
void destroy_event(cudaEvent_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cudaEventDestroy(h)); });
}
void destroy_graph(cudaGraph_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cudaGraphDestroy(h)); });
}
void destroy_graph_exec(cudaGraphExec_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cudaGraphExecDestroy(h)); });
}
void destroy_lt(cublasLtHandle_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cublasLtDestroy(h)); });
}
void destroy_matmul_desc(cublasLtMatmulDesc_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cublasLtMatmulDescDestroy(h)); });
}
void destroy_layout(cublasLtMatrixLayout_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cublasLtMatrixLayoutDestroy(h)); });
}
void destroy_preference(cublasLtMatmulPreference_t h) noexcept {
  best_effort([&] { FANIN_CUDA_CHECK(cublasLtMatmulPreferenceDestroy(h)); });
}

DeviceBuffer::DeviceBuffer(int device, size_t bytes) : device_(device) {
  DeviceGuard guard(device);
  RelaxedCaptureMode relaxed;
  FANIN_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    device_ = other.device_;
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reset() noexcept {
  if (ptr_ == nullptr) return;
  best_effort([&] {
    DeviceGuard guard(device_);
    RelaxedCaptureMode relaxed;
    FANIN_CUDA_CHECK(cudaFree(ptr_));
  });
  ptr_ = nullptr;
  bytes_ = 0;
}

PinnedBuffer::PinnedBuffer(size_t bytes) {
  RelaxedCaptureMode relaxed;
  FANIN_CUDA_CHECK(cudaHostAlloc(&ptr_, bytes, cudaHostAllocPortable));
  bytes_ = bytes;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void PinnedBuffer::reset() noexcept {
  if (ptr_ == nullptr) return;
  best_effort([&] {
    RelaxedCaptureMode relaxed;
    FANIN_CUDA_CHECK(cudaFreeHost(ptr_));
  });
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace fanin::backend::cuda
