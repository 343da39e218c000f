#include "backends/cuda/cuda_event.h"

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_stream.h"
#include "core/check.h"

namespace fanin::backend::cuda {
namespace {

CudaStream& on_device(StreamImpl& stream, int device, const char* op) {
  auto& s = static_cast<CudaStream&>(stream);
  FANIN_CHECK(s.device() == device, kInvalidArgument, "[cuda ", op, "] event is on cuda:", device,
              ", stream on cuda:", s.device());
  return s;
}

}  // namespace

CudaEvent::CudaEvent(int device) : device_(device) {
  DeviceGuard guard(device);
  FANIN_CUDA_CHECK(cudaEventCreateWithFlags(event_.out(), cudaEventDisableTiming));
}

void CudaEvent::record(StreamImpl& stream) {
  CudaStream& s = on_device(stream, device_, "Event::record");
  DeviceGuard guard(device_);
  FANIN_CUDA_CHECK(cudaEventRecord(event_.get(), s.encode()));
}

void CudaEvent::make_wait(StreamImpl& stream) {
  CudaStream& s = on_device(stream, device_, "Stream::wait");
  DeviceGuard guard(device_);
  FANIN_CUDA_CHECK(cudaStreamWaitEvent(s.encode(), event_.get(), 0));
}

void CudaEvent::synchronize() const {
  RelaxedCaptureMode relaxed;
  FANIN_CUDA_CHECK(cudaEventSynchronize(event_.get()));
}

bool CudaEvent::query() const noexcept {
  try {
    RelaxedCaptureMode relaxed;
    return FANIN_CUDA_CHECK(cudaEventQuery(event_.get()), cudaErrorNotReady) == cudaSuccess;
  } catch (...) {
    return true;
  }
}

}  // namespace fanin::backend::cuda
