// The CUDA backend's event: one cudaEvent_t (timing disabled).
//
// Threading (backend.h): record() and make_wait() are encode-side calls of
// the stream they name; synchronize() and query() may come from any thread.
// The CUDA runtime serializes concurrent calls on one event, and an event
// that was never recorded counts as complete (query() true, make_wait() a
// no-op), as the core expects.
#pragma once

#include "backends/backend.h"
#include "backends/cuda/cuda_handles.h"

namespace fanin::backend::cuda {

class CudaEvent final : public EventImpl {
 public:
  // Creates the event on `device`. Throws DeviceError.
  explicit CudaEvent(int device);

  void record(StreamImpl& stream) override;
  void make_wait(StreamImpl& stream) override;
  void synchronize() const override;
  // Errors (a failed device, an event last recorded during graph capture)
  // read as complete; synchronize() reports them.
  bool query() const noexcept override;

 private:
  const int device_;
  EventHandle event_;
};

}  // namespace fanin::backend::cuda
