// Operators: argument checks, output allocation, backend dispatch.
#include "fanin/ops.h"

#include <cmath>

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/device.h"
#include "fanin/stream.h"

namespace fanin {

const char* to_string(Activation act) noexcept {
  switch (act) {
    case Activation::kNone: return "none";
    case Activation::kRelu: return "relu";
    case Activation::kGelu: return "gelu";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  if (name == "none") return Activation::kNone;
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu") return Activation::kGelu;
  FANIN_THROW(kInvalidArgument, "[parse_activation] unknown activation '", name,
              "': expected none, relu or gelu");
}

namespace ops {
namespace {

// Checks that `t` is usable as input `what` of `op` on `stream`, and notes
// the stream's use of its storage (Note [Stream-ordered reuse]).
void check_input(const char* op, const char* what, const Tensor& t, Stream& stream) {
  FANIN_CHECK(t.defined(), kInvalidArgument, "[", op, "] ", what, " is a null tensor");
  FANIN_CHECK(&t.device() == &stream.device(), kInvalidArgument, "[", op, "] ", what, " is on ",
              t.device().name(), " but the stream is on ", stream.device().name());
  FANIN_CHECK(t.is_contiguous(), kInvalidArgument, "[", op, "] ", what, " of shape ",
              to_string(t.shape()), " is not contiguous; call ops::contiguous first");
  t.storage()->record_use(stream.id());
}

void check_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  FANIN_CHECK(t.dtype() == want, kInvalidArgument, "[", op, "] ", what, " has dtype ",
              to_string(t.dtype()), ", expected ", to_string(want));
}

void check_float(const char* op, const Tensor& t) {
  FANIN_CHECK(t.dtype() != DType::kI32, kInvalidArgument, "[", op,
              "] needs a floating-point tensor, got i32");
}

backend::Backend& be(Stream& s) { return s.device().backend(); }

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, Activation act,
              Stream& stream) {
  check_input("linear", "x", x, stream);
  check_input("linear", "weight", w, stream);
  check_float("linear", x);
  if (!(w.dtype() == DType::kBF16 && x.dtype() == DType::kF32 && be(stream).mixed_linear()))
    check_dtype("linear", "weight", w, x.dtype());
  FANIN_CHECK(x.ndim() >= 1, kInvalidArgument, "[linear] x must have at least 1 dimension, got ",
              to_string(x.shape()));
  FANIN_CHECK(w.ndim() == 2, kInvalidArgument, "[linear] weight must be 2-D [out, in], got ",
              to_string(w.shape()));
  const int64_t k = x.dim(-1);
  const int64_t n = w.dim(0);
  FANIN_CHECK(w.dim(1) == k, kInvalidArgument, "[linear] x has ", k, " columns, weight expects ",
              w.dim(1), " (x ", to_string(x.shape()), ", weight ", to_string(w.shape()), ")");
  if (bias.defined()) {
    check_input("linear", "bias", bias, stream);
    check_dtype("linear", "bias", bias, x.dtype());
    FANIN_CHECK(bias.ndim() == 1 && bias.dim(0) == n, kInvalidArgument, "[linear] bias has shape ",
                to_string(bias.shape()), ", expected [", n, "]");
  }
  Shape out_shape = x.shape();
  out_shape.back() = n;
  Tensor out = Tensor::empty(out_shape, x.dtype(), stream);
  if (out.numel() == 0) return out;
  backend::LinearArgs a;
  a.x = x.data();
  a.w = w.data();
  a.bias = bias.defined() ? bias.data() : nullptr;
  a.out = out.data();
  a.m = out.numel() / n;
  a.n = n;
  a.k = k;
  a.dtype = x.dtype();
  a.w_dtype = w.dtype();
  a.act = act;
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).linear(stream.impl(), a);
  return out;
}

Tensor add(const Tensor& a, const Tensor& b, Stream& stream) {
  check_input("add", "a", a, stream);
  check_input("add", "b", b, stream);
  check_float("add", a);
  check_dtype("add", "b", b, a.dtype());
  const bool same = a.shape() == b.shape();
  const bool row = b.ndim() == 1 && a.ndim() >= 1 && b.dim(0) == a.dim(-1);
  FANIN_CHECK(same || row, kInvalidArgument, "[add] b of shape ", to_string(b.shape()),
              " neither matches a of shape ", to_string(a.shape()),
              " nor is a row vector of its last dimension");
  Tensor out = Tensor::empty(a.shape(), a.dtype(), stream);
  if (out.numel() == 0) return out;
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).add(stream.impl(), a.data(), b.data(), out.data(), a.numel(), b.numel(), a.dtype());
  return out;
}

Tensor layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                 Stream& stream) {
  check_input("layernorm", "x", x, stream);
  check_input("layernorm", "gamma", gamma, stream);
  check_input("layernorm", "beta", beta, stream);
  check_float("layernorm", x);
  check_dtype("layernorm", "gamma", gamma, x.dtype());
  check_dtype("layernorm", "beta", beta, x.dtype());
  FANIN_CHECK(x.ndim() >= 1, kInvalidArgument, "[layernorm] x must have at least 1 dimension");
  const int64_t c = x.dim(-1);
  FANIN_CHECK(gamma.ndim() == 1 && gamma.dim(0) == c, kInvalidArgument,
              "[layernorm] gamma has shape ", to_string(gamma.shape()), ", expected [", c, "]");
  FANIN_CHECK(beta.ndim() == 1 && beta.dim(0) == c, kInvalidArgument,
              "[layernorm] beta has shape ", to_string(beta.shape()), ", expected [", c, "]");
  FANIN_CHECK(eps > 0.0f, kInvalidArgument, "[layernorm] eps must be > 0, got ", eps);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), stream);
  if (out.numel() == 0) return out;
  backend::LayerNormArgs a;
  a.x = x.data();
  a.gamma = gamma.data();
  a.beta = beta.data();
  a.out = out.data();
  a.cols = c;
  a.rows = x.numel() / c;
  a.eps = eps;
  a.dtype = x.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).layernorm(stream.impl(), a);
  return out;
}

Tensor softmax(const Tensor& x, Stream& stream) {
  check_input("softmax", "x", x, stream);
  check_float("softmax", x);
  FANIN_CHECK(x.ndim() >= 1, kInvalidArgument, "[softmax] x must have at least 1 dimension");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), stream);
  if (out.numel() == 0) return out;
  const int64_t c = x.dim(-1);
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).softmax(stream.impl(), x.data(), out.data(), x.numel() / c, c, x.dtype());
  return out;
}

namespace {
Tensor unary(const char* op, backend::Unary kind, const Tensor& x, Stream& stream) {
  check_input(op, "x", x, stream);
  check_float(op, x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), stream);
  if (out.numel() == 0) return out;
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).unary(stream.impl(), kind, x.data(), out.data(), x.numel(), x.dtype());
  return out;
}
}  // namespace

Tensor relu(const Tensor& x, Stream& stream) {
  return unary("relu", backend::Unary::kRelu, x, stream);
}

Tensor gelu(const Tensor& x, Stream& stream) {
  return unary("gelu", backend::Unary::kGelu, x, stream);
}

Tensor cast(const Tensor& x, DType dtype, Stream& stream) {
  check_input("cast", "x", x, stream);
  Tensor out = Tensor::empty(x.shape(), dtype, stream);
  if (out.numel() == 0) return out;
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).cast(stream.impl(), x.data(), x.dtype(), out.data(), dtype, x.numel());
  return out;
}

Tensor contiguous(const Tensor& x, Stream& stream) {
  FANIN_CHECK(x.defined(), kInvalidArgument, "[contiguous] x is a null tensor");
  FANIN_CHECK(&x.device() == &stream.device(), kInvalidArgument, "[contiguous] x is on ",
              x.device().name(), " but the stream is on ", stream.device().name());
  x.storage()->record_use(stream.id());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), stream);
  if (out.numel() == 0) return out;
  Encoder enc = stream.command_buffer().begin_encoding();
  if (x.is_contiguous()) {
    be(stream).copy(stream.impl(), out.data(), x.data(), x.nbytes());
    return out;
  }
  // Gather: copy maximal contiguous inner runs one by one. Views made by
  // slice() keep the inner dimensions dense, so runs are long.
  const int nd = x.ndim();
  int inner = nd;  // dims [inner, nd) form one dense run
  int64_t run = 1;
  while (inner > 0 && x.strides()[inner - 1] == run) {
    --inner;
    run *= x.shape()[inner];
  }
  const size_t esize = dtype_size(x.dtype());
  std::vector<int64_t> idx(inner, 0);
  const int64_t runs = x.numel() / run;
  char* dst = static_cast<char*>(out.data());
  const char* base = static_cast<const char*>(x.data());
  for (int64_t r = 0; r < runs; ++r) {
    int64_t off = 0;
    for (int d = 0; d < inner; ++d) off += idx[d] * x.strides()[d];
    be(stream).copy(stream.impl(), dst + r * run * esize, base + off * static_cast<int64_t>(esize),
                    static_cast<size_t>(run) * esize);
    for (int d = inner - 1; d >= 0; --d) {
      if (++idx[d] < x.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

namespace {

// The checks embedding and embedding_packed share: int32 ids, and word,
// position and type tables of one float dtype and width, with room for
// `seq` positions.
void check_embedding(const char* op, const Tensor& ids, const Tensor& word, const Tensor& pos,
                     const Tensor& type, int64_t seq, Stream& stream) {
  check_input(op, "ids", ids, stream);
  check_input(op, "word", word, stream);
  check_input(op, "pos", pos, stream);
  check_input(op, "type", type, stream);
  check_dtype(op, "ids", ids, DType::kI32);
  check_float(op, word);
  check_dtype(op, "pos", pos, word.dtype());
  check_dtype(op, "type", type, word.dtype());
  FANIN_CHECK(word.ndim() == 2 && pos.ndim() == 2 && type.ndim() == 2, kInvalidArgument, "[", op,
              "] tables must be 2-D, got word ", to_string(word.shape()), ", pos ",
              to_string(pos.shape()), ", type ", to_string(type.shape()));
  const int64_t hidden = word.dim(1);
  FANIN_CHECK(pos.dim(1) == hidden && type.dim(1) == hidden, kInvalidArgument, "[", op,
              "] table widths differ: word ", hidden, ", pos ", pos.dim(1), ", type ", type.dim(1));
  FANIN_CHECK(seq <= pos.dim(0), kInvalidArgument, "[", op, "] sequence length ", seq,
              " exceeds the ", pos.dim(0), " positions of the model");
  FANIN_CHECK(word.dim(0) > 0 && type.dim(0) > 0, kInvalidArgument, "[", op,
              "] empty vocabulary table");
}

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& types, const Tensor& word, const Tensor& pos,
                 const Tensor& type, Stream& stream) {
  check_input("embedding", "ids", ids, stream);
  FANIN_CHECK(ids.ndim() == 2, kInvalidArgument, "[embedding] ids must be [batch, seq], got ",
              to_string(ids.shape()));
  check_embedding("embedding", ids, word, pos, type, ids.dim(1), stream);
  const int64_t hidden = word.dim(1);
  if (types.defined()) {
    check_input("embedding", "types", types, stream);
    check_dtype("embedding", "types", types, DType::kI32);
    FANIN_CHECK(types.shape() == ids.shape(), kInvalidArgument, "[embedding] types has shape ",
                to_string(types.shape()), ", ids has ", to_string(ids.shape()));
  }
  Tensor out = Tensor::empty({ids.dim(0), ids.dim(1), hidden}, word.dtype(), stream);
  if (out.numel() == 0) return out;
  backend::EmbeddingArgs a;
  a.ids = ids.data_as<int32_t>();
  a.types = types.defined() ? types.data_as<int32_t>() : nullptr;
  a.word = word.data();
  a.pos = pos.data();
  a.type = type.data();
  a.out = out.data();
  a.batch = ids.dim(0);
  a.seq = ids.dim(1);
  a.hidden = hidden;
  a.vocab = word.dim(0);
  a.type_vocab = type.dim(0);
  a.dtype = word.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).embedding(stream.impl(), a);
  return out;
}

Tensor attention(const Tensor& qkv, const Tensor& lengths, int heads, Stream& stream) {
  check_input("attention", "qkv", qkv, stream);
  check_input("attention", "lengths", lengths, stream);
  check_float("attention", qkv);
  check_dtype("attention", "lengths", lengths, DType::kI32);
  FANIN_CHECK(qkv.ndim() == 3, kInvalidArgument, "[attention] qkv must be [batch, seq, 3*hidden], got ",
              to_string(qkv.shape()));
  FANIN_CHECK(heads > 0, kInvalidArgument, "[attention] heads must be > 0, got ", heads);
  const int64_t width = qkv.dim(2);
  FANIN_CHECK(width % (3 * heads) == 0, kInvalidArgument, "[attention] qkv width ", width,
              " is not 3 * heads (", heads, ") * head_dim");
  FANIN_CHECK(lengths.ndim() == 1 && lengths.dim(0) == qkv.dim(0), kInvalidArgument,
              "[attention] lengths has shape ", to_string(lengths.shape()), ", expected [",
              qkv.dim(0), "]");
  const int64_t head_dim = width / (3 * heads);
  Tensor out = Tensor::empty({qkv.dim(0), qkv.dim(1), heads * head_dim}, qkv.dtype(), stream);
  if (out.numel() == 0) return out;
  backend::AttentionArgs a;
  a.qkv = qkv.data();
  a.lengths = lengths.data_as<int32_t>();
  a.out = out.data();
  a.batch = qkv.dim(0);
  a.seq = qkv.dim(1);
  a.heads = heads;
  a.head_dim = head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  a.dtype = qkv.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).attention(stream.impl(), a);
  return out;
}

Tensor mean_pool(const Tensor& x, const Tensor& lengths, bool l2_normalize, Stream& stream) {
  check_input("mean_pool", "x", x, stream);
  check_input("mean_pool", "lengths", lengths, stream);
  check_float("mean_pool", x);
  check_dtype("mean_pool", "lengths", lengths, DType::kI32);
  FANIN_CHECK(x.ndim() == 3, kInvalidArgument, "[mean_pool] x must be [batch, seq, hidden], got ",
              to_string(x.shape()));
  FANIN_CHECK(lengths.ndim() == 1 && lengths.dim(0) == x.dim(0), kInvalidArgument,
              "[mean_pool] lengths has shape ", to_string(lengths.shape()), ", expected [",
              x.dim(0), "]");
  Tensor out = Tensor::empty({x.dim(0), x.dim(2)}, DType::kF32, stream);
  if (out.numel() == 0) return out;
  backend::MeanPoolArgs a;
  a.x = x.data();
  a.lengths = lengths.data_as<int32_t>();
  a.out = out.data_as<float>();
  a.batch = x.dim(0);
  a.seq = x.dim(1);
  a.hidden = x.dim(2);
  a.l2_normalize = l2_normalize;
  a.dtype = x.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).mean_pool(stream.impl(), a);
  return out;
}

namespace {

void check_packed(const char* op, const Tensor& offsets, int64_t max_len, Stream& stream) {
  FANIN_CHECK(be(stream).packed_sequences(), kUnavailable, "[", op, "] the ",
              stream.device().name(), " backend does not take packed sequences");
  check_input(op, "offsets", offsets, stream);
  check_dtype(op, "offsets", offsets, DType::kI32);
  FANIN_CHECK(offsets.ndim() == 1 && offsets.dim(0) >= 1, kInvalidArgument, "[", op,
              "] offsets must be [batch + 1], got ", to_string(offsets.shape()));
  FANIN_CHECK(max_len >= 1, kInvalidArgument, "[", op, "] max_len must be >= 1, got ", max_len);
}

}  // namespace

bool packed_sequences(const Device& device) {
  return device.backend().packed_sequences();
}

Tensor embedding_packed(const Tensor& ids, const Tensor& offsets, int64_t max_len,
                        const Tensor& word, const Tensor& pos, const Tensor& type,
                        Stream& stream) {
  check_packed("embedding_packed", offsets, max_len, stream);
  check_input("embedding_packed", "ids", ids, stream);
  FANIN_CHECK(ids.ndim() == 1, kInvalidArgument, "[embedding_packed] ids must be [total], got ",
              to_string(ids.shape()));
  check_embedding("embedding_packed", ids, word, pos, type, max_len, stream);
  Tensor out = Tensor::empty({ids.dim(0), word.dim(1)}, word.dtype(), stream);
  if (out.numel() == 0) return out;
  backend::EmbeddingArgs a;
  a.ids = ids.data_as<int32_t>();
  a.word = word.data();
  a.pos = pos.data();
  a.type = type.data();
  a.out = out.data();
  a.offsets = offsets.data_as<int32_t>();
  a.total = ids.dim(0);
  a.batch = offsets.dim(0) - 1;
  a.seq = max_len;
  a.hidden = word.dim(1);
  a.vocab = word.dim(0);
  a.type_vocab = type.dim(0);
  a.dtype = word.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).embedding(stream.impl(), a);
  return out;
}

Tensor attention_packed(const Tensor& qkv, const Tensor& offsets, int64_t max_len, int heads,
                        Stream& stream) {
  check_packed("attention_packed", offsets, max_len, stream);
  check_input("attention_packed", "qkv", qkv, stream);
  check_float("attention_packed", qkv);
  FANIN_CHECK(qkv.ndim() == 2, kInvalidArgument,
              "[attention_packed] qkv must be [total, 3*hidden], got ", to_string(qkv.shape()));
  FANIN_CHECK(heads > 0, kInvalidArgument, "[attention_packed] heads must be > 0, got ", heads);
  FANIN_CHECK(qkv.dim(1) % (3 * heads) == 0, kInvalidArgument, "[attention_packed] qkv width ",
              qkv.dim(1), " is not 3 * heads (", heads, ") * head_dim");
  const int64_t head_dim = qkv.dim(1) / (3 * heads);
  Tensor out = Tensor::empty({qkv.dim(0), heads * head_dim}, qkv.dtype(), stream);
  if (out.numel() == 0) return out;
  backend::AttentionArgs a;
  a.qkv = qkv.data();
  a.out = out.data();
  a.offsets = offsets.data_as<int32_t>();
  a.total = qkv.dim(0);
  a.batch = offsets.dim(0) - 1;
  a.seq = max_len;
  a.heads = heads;
  a.head_dim = head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  a.dtype = qkv.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).attention(stream.impl(), a);
  return out;
}

Tensor mean_pool_packed(const Tensor& x, const Tensor& offsets, int64_t max_len,
                        bool l2_normalize, Stream& stream) {
  check_packed("mean_pool_packed", offsets, max_len, stream);
  check_input("mean_pool_packed", "x", x, stream);
  check_float("mean_pool_packed", x);
  FANIN_CHECK(x.ndim() == 2, kInvalidArgument, "[mean_pool_packed] x must be [total, hidden], got ",
              to_string(x.shape()));
  Tensor out = Tensor::empty({offsets.dim(0) - 1, x.dim(1)}, DType::kF32, stream);
  if (out.numel() == 0) return out;
  backend::MeanPoolArgs a;
  a.x = x.data();
  a.out = out.data_as<float>();
  a.offsets = offsets.data_as<int32_t>();
  a.total = x.dim(0);
  a.batch = offsets.dim(0) - 1;
  a.seq = max_len;
  a.hidden = x.dim(1);
  a.l2_normalize = l2_normalize;
  a.dtype = x.dtype();
  Encoder enc = stream.command_buffer().begin_encoding();
  be(stream).mean_pool(stream.impl(), a);
  return out;
}

}  // namespace ops
}  // namespace fanin
