// fanin/ops.h: the operators models are built from.
//
// Contract: each op checks its inputs (defined, same device as the stream,
// dtype, shape) and throws InvalidArgument naming the op and the offending
// values, e.g. "[linear] x has 513 columns, weight expects 512"; then it
// allocates its output on `stream` and encodes the work there (opening an
// implicit encoder, so the one-encoder rule applies). Ops return before the
// work has run; synchronize the stream (or read with Tensor::to_vector) to
// see results. Calling ops on different streams from different threads at
// the same time is the intended use; weights may be shared by all of them.
#pragma once

#include "fanin/tensor.h"

namespace fanin {

class Stream;

// Activation fused into linear, or applied by itself.
enum class Activation { kNone, kRelu, kGelu /* exact, erf-based */ };

// "none", "relu", "gelu".
const char* to_string(Activation act) noexcept;
// Parses "none", "relu", "gelu"; throws InvalidArgument otherwise.
Activation parse_activation(const std::string& name);

namespace ops {

// act(x * w^T + bias). x: [..., K]; w: [N, K]; bias: [N] or null; out:
// [..., N]. All of one dtype.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, Activation act,
              Stream& stream);

// a + b; b has a's shape or is a row vector [C] broadcast over a's rows.
Tensor add(const Tensor& a, const Tensor& b, Stream& stream);

// Layer normalisation over the last dimension with affine gamma, beta [C].
Tensor layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                 Stream& stream);

// Softmax over the last dimension.
Tensor softmax(const Tensor& x, Stream& stream);

// max(x, 0).
Tensor relu(const Tensor& x, Stream& stream);

// Exact (erf) GELU.
Tensor gelu(const Tensor& x, Stream& stream);

// x converted to `dtype` (round to nearest even).
Tensor cast(const Tensor& x, DType dtype, Stream& stream);

// A contiguous copy of x (a view's data gathered), on `stream`.
Tensor contiguous(const Tensor& x, Stream& stream);

}  // namespace ops
}  // namespace fanin
