// Shared helpers of the raw-CUDA race reproductions. No fanin code: these
// programs show what the CUDA runtime itself does when threads share (or do
// not share) a stream, mirroring the three experiments of the Metal report.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#define RACE_CHECK(call)                                                              \
  do {                                                                                \
    cudaError_t err_ = (call);                                                        \
    if (err_ != cudaSuccess) {                                                        \
      std::fprintf(stderr, "%s failed: %s (%s)\n", #call, cudaGetErrorName(err_),     \
                   cudaGetErrorString(err_));                                         \
      std::exit(3);                                                                   \
    }                                                                                 \
  } while (0)

// Exits 77 (skipped) when there is no usable GPU.
inline void require_gpu(const char* program) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    std::printf("%s: SKIP, no CUDA device (%s)\n", program,
                err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    std::exit(77);
  }
}

// A reusable barrier for N threads.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    int gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen != gen_; });
    }
  }

 private:
  std::mutex mu_;  // guards count_ and gen_
  std::condition_variable cv_;
  int n_, count_ = 0, gen_ = 0;
};

// y[i] = y[i] * a + b over n floats.
__global__ void axpb(float* y, float a, float b, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = y[i] * a + b;
}
