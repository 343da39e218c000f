// Operators: argument checks, output allocation, backend dispatch.
#include "fanin/ops.h"

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

}  // namespace ops
}  // namespace fanin
