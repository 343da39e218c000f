// The backend interface: what a device kind (cpu, cuda, later metal) must
// provide. Core code talks to devices only through these classes; no core
// file includes a backend's own headers (Note [Backends] in docs/design.md).
//
// Threading: a Backend object is shared by all threads and must be
// thread-safe. A StreamImpl is driven by one encoding thread at a time (the
// core's CommandBuffer guarantees it) for encode-side calls (kernels,
// end_encoding, record/wait), while its fence and synchronize calls may come
// from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fanin/device.h"
#include "fanin/ops.h"
#include "fanin/tensor.h"

namespace fanin::backend {

class StreamImpl;

// A captured, replayable sequence of stream work (a CUDA graph on cuda, a
// recorded task list on cpu).
class GraphImpl {
 public:
  virtual ~GraphImpl() = default;
  // Encode side: replays the captured work on `stream`, after its earlier work.
  virtual void launch(StreamImpl& stream) = 0;
};

// Per-stream backend state: the device queue plus anything a library
// forbids sharing across threads (BLAS handles, workspaces, graph capture).
class StreamImpl {
 public:
  virtual ~StreamImpl() = default;

  // Note [Graphs]: between begin_capture() and end_capture(), work encoded on
  // this stream is recorded into a graph instead of being submitted. Capture
  // is per stream and per thread (CUDA: cudaStreamCaptureModeThreadLocal), so
  // a capture never disturbs another thread's stream. Encode side only.
  virtual void begin_capture() = 0;
  virtual std::unique_ptr<GraphImpl> end_capture() = 0;

  // The outermost encoder on this stream ended: submit what was encoded.
  virtual void end_encoding() = 0;

  // Note [Stream fences]: a stream's timeline. fence() returns a value that
  // fence_done() reports complete once every piece of work encoded before
  // the call has finished; the values grow monotonically. Thread-safe.
  virtual uint64_t fence() const noexcept = 0;
  virtual bool fence_done(uint64_t value) const noexcept = 0;
  // Blocks the host until fence_done(value), or until all submitted work
  // finished if `value` covers work not yet submitted. Thread-safe.
  virtual void wait_fence(uint64_t value) noexcept = 0;

  // Blocks until all submitted work finished; rethrows (and clears) the
  // first asynchronous error of that work. Thread-safe.
  virtual void synchronize() = 0;
  // True when all submitted work finished. Thread-safe.
  virtual bool query() const noexcept = 0;
};

// A reusable device event.
class EventImpl {
 public:
  virtual ~EventImpl() = default;
  // Encode side: mark the current end of `stream`'s work.
  virtual void record(StreamImpl& stream) = 0;
  // Encode side: make later work of `stream` wait for the last record.
  virtual void make_wait(StreamImpl& stream) = 0;
  // Host side, any thread.
  virtual void synchronize() const = 0;
  virtual bool query() const noexcept = 0;
};

// Arguments of the fused linear kernel: out[M,N] = act(x[M,K] * w[N,K]^T + b[N]).
// All pointers are device pointers of contiguous row-major data.
struct LinearArgs {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;  // may be null
  void* out = nullptr;
  int64_t m = 0, n = 0, k = 0;
  DType dtype = DType::kF32;    // x, bias and out
  DType w_dtype = DType::kF32;  // w: dtype, or bf16 with f32 x where mixed_linear() (Note [CPU bf16 matmul])
  Activation act = Activation::kNone;
};

struct LayerNormArgs {  // out[rows,cols] = (x - mean) / sqrt(var + eps) * gamma + beta
  const void* x = nullptr;
  const void* gamma = nullptr;
  const void* beta = nullptr;
  void* out = nullptr;
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
  DType dtype = DType::kF32;
};

// Element-wise kinds handled by one kernel entry.
enum class Unary { kRelu, kGelu };

// Sequence-model arguments. A batch is padded to [batch, seq]; lengths[b]
// (device i32) says how many leading tokens of row b are real.
//
// Note [Packed sequences]
// Where a backend's packed_sequences() is true, `offsets` may be given
// instead: the batch's tokens lie end to end, sequence b at rows
// [offsets[b], offsets[b + 1]) of a [total, ...] buffer (offsets: device
// i32, batch + 1 values, offsets[0] = 0, non-decreasing), `seq` is the
// longest sequence, and no work is spent on padding: every GEMM of the model
// runs on `total` rows instead of batch * seq.
struct EmbeddingArgs {  // out[b,s,:] = word[ids[b,s]] + pos[s] + type[types[b,s] or 0]
  const int32_t* ids = nullptr;    // [batch, seq]; clamped into [0, vocab)
  const int32_t* types = nullptr;  // [batch, seq] or null (all type 0); clamped
  const void* word = nullptr;      // [vocab, hidden]
  const void* pos = nullptr;       // [max_pos >= seq, hidden]
  const void* type = nullptr;      // [type_vocab, hidden]
  void* out = nullptr;             // [batch, seq, hidden]
  const int32_t* offsets = nullptr;  // packed: ids/types [total], out [total, hidden]
  int64_t total = 0;                 // packed: rows; offsets are clamped into [0, total]
  int64_t batch = 0, seq = 0, hidden = 0, vocab = 0, type_vocab = 0;
  DType dtype = DType::kF32;
};

struct AttentionArgs {  // per (b, head): softmax(q k^T * scale over keys < len) v
  const void* qkv = nullptr;         // [batch, seq, 3, heads, head_dim]
  const int32_t* lengths = nullptr;  // [batch]; clamped into [0, seq]
  void* out = nullptr;               // [batch, seq, heads, head_dim]; padded rows 0
  const int32_t* offsets = nullptr;  // packed: qkv [total, 3, heads, head_dim], out [total, ...]
  int64_t total = 0;
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0;
  float scale = 1.0f;
  DType dtype = DType::kF32;
};

struct MeanPoolArgs {  // out[b,:] = mean over s < len of x[b,s,:], optionally L2-normalised
  const void* x = nullptr;           // [batch, seq, hidden]
  const int32_t* lengths = nullptr;  // [batch]
  float* out = nullptr;              // [batch, hidden], always f32
  const int32_t* offsets = nullptr;  // packed: x [total, hidden]; lengths unused
  int64_t total = 0;
  int64_t batch = 0, seq = 0, hidden = 0;
  bool l2_normalize = true;
  DType dtype = DType::kF32;
};

// One device kind.
class Backend {
 public:
  virtual ~Backend() = default;

  virtual DeviceType type() const noexcept = 0;
  // Devices present; 0 when not built or none found.
  virtual int device_count() const noexcept = 0;
  // Why device_count() is 0 (empty when devices exist).
  virtual std::string unavailable_reason() const = 0;
  virtual std::string describe(int device_index) const = 0;
  // Throws DeviceError when the device no longer works (CUDA: a sticky
  // error of its context). May wait for the device's queued work: called
  // only after a failure (Note [Engine devices]). Default: always works.
  virtual void check_device(int device_index) { (void)device_index; }

  virtual std::unique_ptr<StreamImpl> create_stream(int device_index) = 0;
  virtual std::unique_ptr<EventImpl> create_event(int device_index) = 0;
  // nullptr when out of memory; other failures throw DeviceError.
  virtual void* raw_alloc(int device_index, size_t bytes) = 0;
  virtual void raw_free(int device_index, void* ptr) noexcept = 0;
  // Host memory the device copies from/to fastest and that copies inside a
  // graph capture may use (CUDA: page-locked). Default: aligned malloc.
  virtual void* host_alloc(size_t bytes);
  virtual void host_free(void* ptr) noexcept;

  // Encode-side kernels. Each runs after earlier work on `stream`.
  // copy_from_host may read `src` only during the call (stage if needed);
  // copy_to_host writes `dst` when the stream reaches it. Note [Copies in
  // graphs]: while the stream captures, both record the host pointer and
  // read/write that memory at every replay instead; backends that need
  // special host memory for that (CUDA: page-locked) reject other memory
  // with InvalidArgument.
  virtual void copy_from_host(StreamImpl& stream, void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(StreamImpl& stream, void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(StreamImpl& stream, void* dst, const void* src, size_t bytes) = 0;
  virtual void linear(StreamImpl& stream, const LinearArgs& args) = 0;
  virtual void layernorm(StreamImpl& stream, const LayerNormArgs& args) = 0;
  // out[i] = a[i] + b[i % nb] (b broadcast over rows when nb < n).
  virtual void add(StreamImpl& stream, const void* a, const void* b, void* out, int64_t n,
                   int64_t nb, DType dtype) = 0;
  virtual void unary(StreamImpl& stream, Unary kind, const void* x, void* out, int64_t n,
                     DType dtype) = 0;
  // Row-wise softmax over the last dimension.
  virtual void softmax(StreamImpl& stream, const void* x, void* out, int64_t rows, int64_t cols,
                       DType dtype) = 0;
  virtual void cast(StreamImpl& stream, const void* x, DType from, void* out, DType to,
                    int64_t n) = 0;

  // Sequence-model kernels. A backend without them reports Unavailable.
  // True when embedding, attention and mean_pool take packed sequences
  // (Note [Packed sequences]).
  virtual bool packed_sequences() const noexcept { return false; }
  // True when linear() takes bf16 weights with f32 x, bias and out.
  virtual bool mixed_linear() const noexcept { return false; }
  // The dtype a model stores its linear layers' weights in when its
  // activations are `act` (Note [CPU bf16 matmul]): `act` unless the backend
  // computes those GEMMs in a narrower type anyway.
  virtual DType linear_weight_dtype(DType act) const noexcept { return act; }
  virtual void embedding(StreamImpl& stream, const EmbeddingArgs& args);
  virtual void attention(StreamImpl& stream, const AttentionArgs& args);
  virtual void mean_pool(StreamImpl& stream, const MeanPoolArgs& args);
};

// The CPU backend (always built).
Backend& cpu_backend();
// The CUDA backend, or a stub whose device_count() is 0 when CUDA is not
// built (no_cuda.cpp).
Backend& cuda_backend();
// The backend for `type`.
Backend& backend_for(DeviceType type);

}  // namespace fanin::backend
