// linear through cuBLASLt, with a per-stream cache of matmul plans.
//
// Note [cuBLASLt plans]
// fanin's linear is row-major: out[M,N] = act(x[M,K] * w[N,K]^T + b[N]).
// cuBLASLt is column-major, and a row-major [R,C] matrix is the column-major
// [C,R] matrix with the same bytes, so we ask for
//   D = out^T (N x M, ld N) = op(A) * op(B),
//   A = w  seen as column-major K x N (ld K), op = transpose -> N x K,
//   B = x  seen as column-major K x M (ld K), op = none      -> K x M,
// and the bias, one value per row of D, is broadcast over D's M columns,
// i.e. added to every row of out. Epilogues: DEFAULT, RELU, BIAS,
// RELU_BIAS. cuBLASLt's GELU epilogue is the tanh approximation, so exact
// GELU runs the BIAS (or DEFAULT) epilogue and then launch_bias_act. If the
// heuristic finds no algorithm with a fused epilogue, the plan falls back to
// DEFAULT plus launch_bias_act. Compute is fp32 for every dtype
// (CUBLAS_COMPUTE_32F; FANIN_ALLOW_TF32=1 lets f32 use TF32 tensor cores);
// FANIN_CUDA_SM_TARGET=N makes the heuristic plan for N SMs.
//
// A plan (descriptor, three layouts, the heuristic's algorithm) depends on
// (m, n, k, dtype, bias?, act) and on the pointers' alignments, which the
// heuristic uses to choose kernels; it is built on the first call with that
// key and reused, so a repeated linear costs one hash lookup, one descriptor
// attribute write (the bias pointer) and cublasLtMatmul.
//
// Threading: a Matmul belongs to one CudaStream and is used only on its
// encode side, one thread at a time (Note [One encoder]), so it has no lock.
// Its handle and workspace are never shared with another stream (a cuBLASLt
// workspace used by two concurrent streams is a data race).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "backends/backend.h"
#include "backends/cuda/cuda_handles.h"
#include "backends/cuda/cuda_settings.h"

namespace fanin::backend::cuda {

class Matmul {
 public:
  // Creates the cuBLASLt handle and a settings.workspace_bytes workspace on
  // `device`. Throws OutOfMemory / DeviceError.
  Matmul(int device, const StreamSettings& settings);
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;
  ~Matmul();

  // Encode side: enqueues out = act(x w^T + b) on `stream` (a stream of
  // this Matmul's device, which must be current).
  void linear(cudaStream_t stream, const LinearArgs& args);

  size_t workspace_bytes() const noexcept { return workspace_.bytes(); }

 private:
  struct Key {
    int64_t m, n, k;
    DType dtype;
    Activation act;
    bool has_bias;
    uint16_t align_x, align_w, align_out, align_bias;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& key) const noexcept;
  };
  struct Plan;

  std::unique_ptr<Plan> make_plan(const Key& key, const LinearArgs& args);
  void print_plan(const Key& key, int epilogue, const cublasLtMatmulHeuristicResult_t& r) const;

  const StreamSettings settings_;
  LtHandle handle_;
  DeviceBuffer workspace_;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

}  // namespace fanin::backend::cuda
