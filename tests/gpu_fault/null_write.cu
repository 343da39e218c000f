// The faulting kernel of engine_sticky_fault.cpp: one write through a null
// pointer, an illegal address that leaves the CUDA context unusable.
#include <cuda_runtime.h>

namespace {
__global__ void write_through_null(int* p) { *p = 1; }
}  // namespace

void launch_write_through_null(cudaStream_t stream) {
  write_through_null<<<1, 1, 0, stream>>>(nullptr);
}
