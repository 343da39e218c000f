// Experiment 3 (the Metal report's Test 3): one stream used by many threads
// one after another (a mutex hands it over): capture, end, replay, in turn.
// Expected: PASS.
#include <thread>
#include <vector>

#include "race_common.h"

int main(int argc, char** argv) {
  require_gpu("race_sequential");
  const int threads = argc > 1 ? std::atoi(argv[1]) : 8;
  const int n = 1 << 12, kernels = 16;
  cudaStream_t s;
  RACE_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  float* y;
  RACE_CHECK(cudaMalloc(&y, n * sizeof(float)));
  RACE_CHECK(cudaMemset(y, 0, n * sizeof(float)));
  std::mutex turn;  // hands the shared stream from thread to thread
  std::atomic<int> ok{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::lock_guard<std::mutex> lock(turn);
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
      if (err == cudaSuccess) err = cudaGraphLaunch(exec, s);
      if (err == cudaSuccess) err = cudaStreamSynchronize(s);
      if (err == cudaSuccess) ok.fetch_add(1);
      else std::printf("  %s\n", cudaGetErrorString(err));
      if (exec) cudaGraphExecDestroy(exec);
      if (g) cudaGraphDestroy(g);
    });
  }
  for (auto& th : pool) th.join();
  float first = -1;
  RACE_CHECK(cudaMemcpy(&first, y, sizeof(float), cudaMemcpyDeviceToHost));
  const bool pass = ok.load() == threads && first == static_cast<float>(threads * kernels);
  std::printf("race_sequential: %s, %d/%d threads captured and replayed in turn on one stream, "
              "result %.0f (expected %d)\n",
              pass ? "PASS" : "FAIL", ok.load(), threads, first, threads * kernels);
  return pass ? 0 : 1;
}
