// Experiment 1 (the Metal report's Test 1): every thread has its own stream.
// N threads capture a CUDA graph at the same moment, each on its own stream
// in thread-local capture mode, then replay it and check the numbers.
// Expected: PASS every time.
#include <thread>
#include <vector>

#include "race_common.h"

int main(int argc, char** argv) {
  require_gpu("race_separate");
  const int threads = argc > 1 ? std::atoi(argv[1]) : 16;
  const int n = 1 << 12, kernels = 32, replays = 50;
  Barrier barrier(threads);
  std::atomic<int> ok{0};
  std::vector<std::string> errors(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      cudaStream_t s;
      RACE_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      float* y;
      RACE_CHECK(cudaMalloc(&y, n * sizeof(float)));
      RACE_CHECK(cudaMemsetAsync(y, 0, n * sizeof(float), s));
      RACE_CHECK(cudaStreamSynchronize(s));
      barrier.wait();  // all threads capture at once
      cudaGraph_t g = nullptr;
      cudaGraphExec_t exec = nullptr;
      cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
      for (int k = 0; err == cudaSuccess && k < kernels; ++k) {
        axpb<<<(n + 255) / 256, 256, 0, s>>>(y, 1.0f, 1.0f, n);
        err = cudaGetLastError();
      }
      cudaError_t end = cudaStreamEndCapture(s, &g);
      if (err == cudaSuccess) err = end;
      if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, g, 0);
      for (int r = 0; err == cudaSuccess && r < replays; ++r) err = cudaGraphLaunch(exec, s);
      if (err == cudaSuccess) err = cudaStreamSynchronize(s);
      float first = -1;
      if (err == cudaSuccess) err = cudaMemcpy(&first, y, sizeof(float), cudaMemcpyDeviceToHost);
      if (err != cudaSuccess) {
        errors[t] = cudaGetErrorString(err);
      } else if (first != static_cast<float>(kernels * replays)) {
        errors[t] = "wrong result " + std::to_string(first);
      } else {
        ok.fetch_add(1);
      }
      if (exec) cudaGraphExecDestroy(exec);
      if (g) cudaGraphDestroy(g);
      cudaFree(y);
      cudaStreamDestroy(s);
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t)
    if (!errors[t].empty()) std::printf("  thread %d: %s\n", t, errors[t].c_str());
  const bool pass = ok.load() == threads;
  std::printf("race_separate: %s, %d/%d threads captured concurrently on their own streams "
              "(thread-local mode) and replayed correctly\n",
              pass ? "PASS" : "FAIL", ok.load(), threads);
  return pass ? 0 : 1;
}
