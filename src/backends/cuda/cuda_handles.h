// One RAII owner per CUDA / cuBLASLt handle kind. Internal to
// src/backends/cuda.
//
// Each owner is move-only and destroys its handle exactly once; destruction
// never throws (errors are dropped, see best_effort in cuda_check.h). Create
// a handle through out(), which releases any held handle and returns the
// slot the creating call writes, so a handle is owned even when the call
// that produced it then reports an error:
//   StreamHandle s;
//   FANIN_CUDA_CHECK(cudaStreamCreateWithFlags(s.out(), cudaStreamNonBlocking));
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

namespace fanin::backend::cuda {

void destroy_stream(cudaStream_t h) noexcept;
void destroy_event(cudaEvent_t h) noexcept;
void destroy_graph(cudaGraph_t h) noexcept;
void destroy_graph_exec(cudaGraphExec_t h) noexcept;
void destroy_lt(cublasLtHandle_t h) noexcept;
void destroy_matmul_desc(cublasLtMatmulDesc_t h) noexcept;
void destroy_layout(cublasLtMatrixLayout_t h) noexcept;
void destroy_preference(cublasLtMatmulPreference_t h) noexcept;

template <typename T, void (*Destroy)(T) noexcept>
class Handle {
 public:
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  ~Handle() { reset(); }

  T get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  // Releases the held handle and returns the slot a creating call fills.
  T* out() noexcept {
    reset();
    return &h_;
  }
  void reset() noexcept {
    if (h_ != nullptr) Destroy(std::exchange(h_, nullptr));
  }

 private:
  T h_ = nullptr;
};

using StreamHandle = Handle<cudaStream_t, &destroy_stream>;
using EventHandle = Handle<cudaEvent_t, &destroy_event>;
using GraphHandle = Handle<cudaGraph_t, &destroy_graph>;
using GraphExecHandle = Handle<cudaGraphExec_t, &destroy_graph_exec>;
using LtHandle = Handle<cublasLtHandle_t, &destroy_lt>;
using MatmulDescHandle = Handle<cublasLtMatmulDesc_t, &destroy_matmul_desc>;
using LayoutHandle = Handle<cublasLtMatrixLayout_t, &destroy_layout>;
using PreferenceHandle = Handle<cublasLtMatmulPreference_t, &destroy_preference>;

// Owns one cudaMalloc allocation on `device` (cudaFree on the same device,
// in relaxed capture mode).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Allocates `bytes` on `device`; throws OutOfMemory / DeviceError.
  DeviceBuffer(int device, size_t bytes);
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : device_(other.device_),
        ptr_(std::exchange(other.ptr_, nullptr)),
        bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  ~DeviceBuffer() { reset(); }

  void* get() const noexcept { return ptr_; }
  size_t bytes() const noexcept { return bytes_; }
  void reset() noexcept;

 private:
  int device_ = 0;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Owns one page-locked host allocation (cudaHostAlloc, portable to every
// device; cudaFreeHost in relaxed capture mode).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  // Allocates `bytes` of page-locked host memory; throws OutOfMemory /
  // DeviceError.
  explicit PinnedBuffer(size_t bytes);
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  ~PinnedBuffer() { reset(); }

  char* get() const noexcept { return static_cast<char*>(ptr_); }
  size_t bytes() const noexcept { return bytes_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }
  void reset() noexcept;

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace fanin::backend::cuda
