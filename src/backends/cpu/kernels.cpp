#include "backends/cpu/kernels.h"

#include "backends/cpu/gemm.h"
#include "backends/cpu/profile.h"
#include "backends/cpu/vec_kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace fanin::backend::cpu {
namespace {

// An f32 view of `n` elements at `p`: the data itself for f32, else a copy.
class F32In {
 public:
  F32In(const void* p, int64_t n, DType t) {
    if (t == DType::kF32 || p == nullptr) {
      ptr_ = static_cast<const float*>(p);
    } else {
      buf_.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) buf_[i] = load(p, i, t);
      ptr_ = buf_.data();
    }
  }
  const float* get() const { return ptr_; }

 private:
  std::vector<float> buf_;
  const float* ptr_;
};

// An f32 output buffer for `n` elements at `p`, rounded into `p` by finish().
class F32Out {
 public:
  F32Out(void* p, int64_t n, DType t) : p_(p), n_(n), t_(t) {
    if (t == DType::kF32) {
      ptr_ = static_cast<float*>(p);
    } else {
      buf_.resize(static_cast<size_t>(n));
      ptr_ = buf_.data();
    }
  }
  float* get() { return ptr_; }
  void finish() {
    if (t_ != DType::kF32)
      for (int64_t i = 0; i < n_; ++i) store(p_, i, t_, buf_[i]);
  }

 private:
  void* p_;
  int64_t n_;
  DType t_;
  std::vector<float> buf_;
  float* ptr_;
};

}  // namespace

void linear(const LinearArgs& a) {
  // bf16 weights with f32 activations: Note [CPU bf16 matmul].
  const bool mixed = a.w_dtype == DType::kBF16 && a.dtype == DType::kF32;
  F32In x(a.x, a.m * a.k, a.dtype);
  F32In w(mixed ? nullptr : a.w, a.n * a.k, a.dtype);
  F32In b(a.bias, a.n, a.dtype);
  F32Out out(a.out, a.m * a.n, a.dtype);
  float* y = out.get();
  {
    ProfScope prof(ProfOp::kGemm, static_cast<uint64_t>(2 * a.m * a.n * a.k));
    if (mixed && a.k > 0) {
      gemm_nt_bf16(a.m, a.n, a.k, x.get(), static_cast<const uint16_t*>(a.w), y);
    } else if (a.k == 0) {
      std::fill(y, y + a.m * a.n, 0.0f);
    } else if (a.m == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(a.n), static_cast<int>(a.k), 1.0f,
                  w.get(), static_cast<int>(a.k), x.get(), 1, 0.0f, y, 1);
    } else {
      gemm_nt(a.m, a.n, a.k, x.get(), w.get(), y);  // Note [CPU GEMM library]
    }
  }
  const int act = a.act == Activation::kRelu ? 1 : a.act == Activation::kGelu ? 2 : 0;
  if (b.get() != nullptr || act != 0) {
    ProfScope prof(act == 2 ? ProfOp::kGelu : ProfOp::kBias);
    vec::bias_act(y, b.get(), a.m, a.n, act);
  }
  out.finish();
}

void layernorm(const LayerNormArgs& a) {
  ProfScope prof(ProfOp::kLayerNorm);
  F32In x(a.x, a.rows * a.cols, a.dtype);
  F32In g(a.gamma, a.cols, a.dtype);
  F32In b(a.beta, a.cols, a.dtype);
  F32Out out(a.out, a.rows * a.cols, a.dtype);
  vec::layernorm(x.get(), nullptr, g.get(), b.get(), out.get(), a.rows, a.cols, a.eps);
  out.finish();
}

void add(const void* a, const void* b, void* out, int64_t n, int64_t nb, DType dtype) {
  ProfScope prof(ProfOp::kAdd);
  F32In x(a, n, dtype);
  F32In y(b, nb, dtype);
  F32Out o(out, n, dtype);
  vec::add(x.get(), y.get(), o.get(), n, nb);
  o.finish();
}

void unary(Unary kind, const void* x, void* out, int64_t n, DType dtype) {
  ProfScope prof(kind == Unary::kGelu ? ProfOp::kGelu : ProfOp::kBias);
  F32In in(x, n, dtype);
  F32Out o(out, n, dtype);
  if (kind == Unary::kGelu) {
    vec::gelu(in.get(), o.get(), n);
  } else {
    for (int64_t i = 0; i < n; ++i) o.get()[i] = std::max(in.get()[i], 0.0f);
  }
  o.finish();
}

void softmax(const void* x, void* out, int64_t rows, int64_t cols, DType dtype) {
  ProfScope prof(ProfOp::kOther);
  F32In in(x, rows * cols, dtype);
  F32Out o(out, rows * cols, dtype);
  if (o.get() != in.get()) std::copy(in.get(), in.get() + rows * cols, o.get());
  for (int64_t r = 0; r < rows; ++r) vec::softmax(o.get() + r * cols, cols);
  o.finish();
}

void cast(const void* x, DType from, void* out, DType to, int64_t n) {
  if (from == to) {
    std::memcpy(out, x, static_cast<size_t>(n) * dtype_size(from));
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(out, i, to, load(x, i, from));
}

}  // namespace fanin::backend::cpu
