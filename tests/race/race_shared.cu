// Experiment 2 (the Metal report's Test 2): threads share what must not be
// shared. Two cases, each tried several times:
//  a) one stream shared by two threads: thread A captures a graph on it
//     while thread B enqueues work on the same stream and synchronizes it;
//  b) two threads capture at once on their own streams in global capture
//     mode (PyTorch's default), and one of them allocates memory meanwhile
//     (as a caching allocator does on a miss).
// Expected: the CUDA runtime reports failures (capture invalidated,
// operation not permitted when stream is capturing). The program prints what
// it saw and exits 0 when every try of both cases showed the failure,
// i.e. the hazard is real; 1 if some try went through unharmed.
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "race_common.h"

namespace {

struct Outcome {
  bool failed = false;
  std::set<std::string> errors;
};

void note(Outcome& o, const char* who, cudaError_t err) {
  if (err != cudaSuccess) {
    o.failed = true;
    o.errors.insert(std::string(who) + ": " + cudaGetErrorString(err));
  }
}

Outcome shared_stream_try() {
  Outcome o;
  const int n = 1 << 12;
  cudaStream_t s;
  RACE_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  float *ya, *yb;
  RACE_CHECK(cudaMalloc(&ya, n * sizeof(float)));
  RACE_CHECK(cudaMalloc(&yb, n * sizeof(float)));
  Barrier barrier(2);
  std::mutex mu;  // guards o
  std::thread a([&] {
    cudaGraph_t g = nullptr;
    cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    barrier.wait();
    for (int k = 0; k < 200 && err == cudaSuccess; ++k) {
      axpb<<<(n + 255) / 256, 256, 0, s>>>(ya, 1.0f, 1.0f, n);
      err = cudaGetLastError();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    cudaError_t end = cudaStreamEndCapture(s, &g);
    std::lock_guard<std::mutex> lock(mu);
    note(o, "capturing thread", err);
    note(o, "capturing thread EndCapture", end);
    if (g) cudaGraphDestroy(g);
  });
  std::thread b([&] {
    barrier.wait();
    cudaError_t err = cudaSuccess;
    for (int k = 0; k < 50 && err == cudaSuccess; ++k) {
      axpb<<<(n + 255) / 256, 256, 0, s>>>(yb, 1.0f, 1.0f, n);
      err = cudaGetLastError();
    }
    cudaError_t sync = cudaStreamSynchronize(s);
    std::lock_guard<std::mutex> lock(mu);
    note(o, "other thread launch", err);
    note(o, "other thread StreamSynchronize", sync);
  });
  a.join();
  b.join();
  cudaGetLastError();
  cudaStreamDestroy(s);
  cudaFree(ya);
  cudaFree(yb);
  cudaGetLastError();
  return o;
}

Outcome global_capture_try() {
  Outcome o;
  const int n = 1 << 12;
  Barrier barrier(2);
  std::mutex mu;  // guards o
  auto body = [&](bool allocates) {
    cudaStream_t s;
    RACE_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float* y;
    RACE_CHECK(cudaMalloc(&y, n * sizeof(float)));
    barrier.wait();
    cudaGraph_t g = nullptr;
    cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    barrier.wait();  // both are capturing now
    void* extra = nullptr;
    cudaError_t alloc = allocates ? cudaMalloc(&extra, 1 << 20) : cudaSuccess;
    for (int k = 0; k < 20 && err == cudaSuccess; ++k) {
      axpb<<<(n + 255) / 256, 256, 0, s>>>(y, 1.0f, 1.0f, n);
      err = cudaGetLastError();
    }
    barrier.wait();
    cudaError_t end = cudaStreamEndCapture(s, &g);
    {
      std::lock_guard<std::mutex> lock(mu);
      note(o, "capturing thread", err);
      note(o, "cudaMalloc during another thread's global capture", alloc);
      note(o, "EndCapture", end);
    }
    if (g) cudaGraphDestroy(g);
    if (extra) cudaFree(extra);
    cudaFree(y);
    cudaStreamDestroy(s);
    cudaGetLastError();
  };
  std::thread a(body, false), b(body, true);
  a.join();
  b.join();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  require_gpu("race_shared");
  const int tries = argc > 1 ? std::atoi(argv[1]) : 5;
  int fail_a = 0, fail_b = 0;
  std::set<std::string> seen_a, seen_b;
  for (int i = 0; i < tries; ++i) {
    Outcome a = shared_stream_try();
    fail_a += a.failed;
    seen_a.insert(a.errors.begin(), a.errors.end());
    Outcome b = global_capture_try();
    fail_b += b.failed;
    seen_b.insert(b.errors.begin(), b.errors.end());
  }
  std::printf("race_shared a) one stream, one thread capturing, one enqueuing: %d/%d tries failed\n",
              fail_a, tries);
  for (auto& e : seen_a) std::printf("    %s\n", e.c_str());
  std::printf("race_shared b) two global-mode captures, one allocating: %d/%d tries failed\n",
              fail_b, tries);
  for (auto& e : seen_b) std::printf("    %s\n", e.c_str());
  const bool reproduced = fail_a == tries && fail_b == tries;
  std::printf("race_shared: %s\n", reproduced ? "REPRODUCED (sharing fails every time)"
                                              : "NOT ALWAYS REPRODUCED");
  return reproduced ? 0 : 1;
}
