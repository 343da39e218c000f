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
// [..., N]. All of one dtype, except that on the CPU w may be bf16 with f32
// x (the CPU's bf16 matmul, Note [CPU bf16 matmul] in docs/design.md).
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

// Sequence ops (the BERT encoder). A batch is padded to [B, S]; `lengths`
// ([B], i32) gives the real tokens of each row, a prefix.

// word[ids] + pos[s] + type[types or 0] for ids [B, S] (i32); types may be
// null. Ids outside the table are clamped (validate on the host first).
// Output [B, S, hidden] in the tables' dtype.
Tensor embedding(const Tensor& ids, const Tensor& types, const Tensor& word, const Tensor& pos,
                 const Tensor& type, Stream& stream);

// Self-attention over qkv [B, S, 3 * heads * head_dim] (q, k, v blocks, each
// heads x head_dim) with keys masked past lengths[b]; scale 1/sqrt(head_dim).
// Output [B, S, heads * head_dim]; rows past a length are zero.
Tensor attention(const Tensor& qkv, const Tensor& lengths, int heads, Stream& stream);

// Mean of x [B, S, H] over the first lengths[b] rows, as f32 [B, H];
// L2-normalised when `l2_normalize`.
Tensor mean_pool(const Tensor& x, const Tensor& lengths, bool l2_normalize, Stream& stream);

// Packed sequences: a batch's tokens end to end, sequence b at rows
// [offsets[b], offsets[b + 1]) (offsets: i32 [B + 1], offsets[0] = 0,
// non-decreasing, each length <= max_len), so no work goes to padding.
// True where `device`'s backend takes them; the *_packed ops raise
// Unavailable elsewhere.
bool packed_sequences(const Device& device);
// embedding() of packed ids [T]: output [T, hidden]; positions restart at 0
// in each sequence.
Tensor embedding_packed(const Tensor& ids, const Tensor& offsets, int64_t max_len,
                        const Tensor& word, const Tensor& pos, const Tensor& type, Stream& stream);
// attention() of packed qkv [T, 3 * heads * head_dim]: output [T, heads * head_dim].
Tensor attention_packed(const Tensor& qkv, const Tensor& offsets, int64_t max_len, int heads,
                        Stream& stream);
// mean_pool() of packed x [T, H]: output f32 [B, H].
Tensor mean_pool_packed(const Tensor& x, const Tensor& offsets, int64_t max_len,
                        bool l2_normalize, Stream& stream);

}  // namespace ops
}  // namespace fanin
