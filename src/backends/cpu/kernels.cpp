#include "backends/cpu/kernels.h"

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

inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

}  // namespace

void linear(const LinearArgs& a) {
  F32In x(a.x, a.m * a.k, a.dtype);
  F32In w(a.w, a.n * a.k, a.dtype);
  F32In b(a.bias, a.n, a.dtype);
  F32Out out(a.out, a.m * a.n, a.dtype);
  float* y = out.get();
  if (a.k == 0) {
    std::fill(y, y + a.m * a.n, 0.0f);
  } else if (a.m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(a.n), static_cast<int>(a.k), 1.0f,
                w.get(), static_cast<int>(a.k), x.get(), 1, 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(a.m),
                static_cast<int>(a.n), static_cast<int>(a.k), 1.0f, x.get(),
                static_cast<int>(a.k), w.get(), static_cast<int>(a.k), 0.0f, y,
                static_cast<int>(a.n));
  }
  const float* bias = b.get();
  for (int64_t i = 0; i < a.m; ++i) {
    float* row = y + i * a.n;
    if (bias != nullptr)
      for (int64_t j = 0; j < a.n; ++j) row[j] += bias[j];
    if (a.act == Activation::kRelu) {
      for (int64_t j = 0; j < a.n; ++j) row[j] = std::max(row[j], 0.0f);
    } else if (a.act == Activation::kGelu) {
      for (int64_t j = 0; j < a.n; ++j) row[j] = gelu_erf(row[j]);
    }
  }
  out.finish();
}

void layernorm(const LayerNormArgs& a) {
  F32In x(a.x, a.rows * a.cols, a.dtype);
  F32In g(a.gamma, a.cols, a.dtype);
  F32In b(a.beta, a.cols, a.dtype);
  F32Out out(a.out, a.rows * a.cols, a.dtype);
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* in = x.get() + r * a.cols;
    float* o = out.get() + r * a.cols;
    double mean = 0.0;
    for (int64_t c = 0; c < a.cols; ++c) mean += in[c];
    mean /= static_cast<double>(a.cols);
    double var = 0.0;
    for (int64_t c = 0; c < a.cols; ++c) var += (in[c] - mean) * (in[c] - mean);
    var /= static_cast<double>(a.cols);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + a.eps));
    for (int64_t c = 0; c < a.cols; ++c)
      o[c] = (in[c] - static_cast<float>(mean)) * inv * g.get()[c] + b.get()[c];
  }
  out.finish();
}

void add(const void* a, const void* b, void* out, int64_t n, int64_t nb, DType dtype) {
  F32In x(a, n, dtype);
  F32In y(b, nb, dtype);
  F32Out o(out, n, dtype);
  for (int64_t i = 0; i < n; ++i) o.get()[i] = x.get()[i] + y.get()[i % nb];
  o.finish();
}

void unary(Unary kind, const void* x, void* out, int64_t n, DType dtype) {
  F32In in(x, n, dtype);
  F32Out o(out, n, dtype);
  for (int64_t i = 0; i < n; ++i) {
    const float v = in.get()[i];
    o.get()[i] = kind == Unary::kRelu ? std::max(v, 0.0f) : gelu_erf(v);
  }
  o.finish();
}

void softmax(const void* x, void* out, int64_t rows, int64_t cols, DType dtype) {
  F32In in(x, rows * cols, dtype);
  F32Out o(out, rows * cols, dtype);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = in.get() + r * cols;
    float* dst = o.get() + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, row[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      dst[c] = std::exp(row[c] - mx);
      sum += dst[c];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t c = 0; c < cols; ++c) dst[c] *= inv;
  }
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
