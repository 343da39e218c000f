#include "backends/cuda/matmul.h"

#include <cstdio>
#include <cstring>
#include <functional>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels/kernels.h"
#include "core/check.h"

namespace fanin::backend::cuda {
namespace {

// A cache entry per distinct key; past this many (e.g. a model fed many
// sequence lengths) the cache starts over rather than grow without bound.
constexpr size_t kMaxPlans = 512;

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kI32:
      break;
  }
  FANIN_THROW(kInvalidArgument, "[cuda linear] needs a floating-point dtype, got ",
              to_string(dtype));
}

// The largest power of two dividing the address, capped at 256 (the
// heuristic's default assumption); 0 for null.
uint16_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (a == 0) return 0;
  const uintptr_t low = a & (~a + 1);
  return static_cast<uint16_t>(low >= 256 ? 256 : low);
}

template <typename T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  FANIN_CUDA_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

template <typename T>
void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
              const T& value) {
  FANIN_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
}

template <typename T>
T algo_config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T value{};
  size_t written = 0;
  FANIN_CUDA_CHECK(
      cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &value, sizeof(value), &written));
  return value;
}

}  // namespace

// FANIN_CUDA_DEBUG=1: one line per plan on stderr, to see what the
// heuristic chose (split-K makes a linear two kernels).
void Matmul::print_plan(const Key& key, int epilogue,
                        const cublasLtMatmulHeuristicResult_t& r) const {
  std::fprintf(stderr,
               "[fanin cuda] linear m=%lld n=%lld k=%lld %s epilogue=%d: algo id=%d tile=%d "
               "splitK=%d reduction=%d stages=%d workspace=%zu waves=%.2f\n",
               static_cast<long long>(key.m), static_cast<long long>(key.n),
               static_cast<long long>(key.k), to_string(key.dtype), epilogue,
               algo_config<int32_t>(r.algo, CUBLASLT_ALGO_CONFIG_ID),
               algo_config<int32_t>(r.algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
               algo_config<int32_t>(r.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
               algo_config<int32_t>(r.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME),
               algo_config<int32_t>(r.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID), r.workspaceSize,
               static_cast<double>(r.wavesCount));
}

struct Matmul::Plan {
  MatmulDescHandle desc;
  LayoutHandle a, b, d;  // w, x, out (C shares D's layout)
  cublasLtMatmulAlgo_t algo{};
  bool epilogue_bias = false;               // the bias pointer is set per call
  bool post_bias = false;                   // launch_bias_act adds the bias
  Activation post_act = Activation::kNone;  // launch_bias_act applies this
};

size_t Matmul::KeyHash::operator()(const Key& key) const noexcept {
  size_t h = std::hash<int64_t>{}(key.m);
  auto mix = [&h](uint64_t v) {
    h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  mix(static_cast<uint64_t>(key.n));
  mix(static_cast<uint64_t>(key.k));
  mix(static_cast<uint64_t>(key.dtype) | static_cast<uint64_t>(key.act) << 8 |
      static_cast<uint64_t>(key.has_bias) << 16);
  mix(static_cast<uint64_t>(key.align_x) | static_cast<uint64_t>(key.align_w) << 16 |
      static_cast<uint64_t>(key.align_out) << 32 | static_cast<uint64_t>(key.align_bias) << 48);
  return h;
}

Matmul::Matmul(int device, const StreamSettings& settings)
    : settings_(settings), workspace_(device, settings.workspace_bytes) {
  DeviceGuard guard(device);
  FANIN_CUDA_CHECK(cublasLtCreate(handle_.out()));
}

Matmul::~Matmul() = default;

std::unique_ptr<Matmul::Plan> Matmul::make_plan(const Key& key, const LinearArgs& args) {
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t type = cuda_type(key.dtype);
  const cublasComputeType_t compute = key.dtype == DType::kF32 && settings_.allow_tf32
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  const auto m = static_cast<uint64_t>(key.m);
  const auto n = static_cast<uint64_t>(key.n);
  const auto k = static_cast<uint64_t>(key.k);

  // Note [cuBLASLt plans]: D (n x m, ld n) = A^T (w: k x n, ld k) * B (x: k x m, ld k).
  FANIN_CUDA_CHECK(cublasLtMatmulDescCreate(plan->desc.out(), compute, CUDA_R_32F));
  set_desc(plan->desc.get(), CUBLASLT_MATMUL_DESC_TRANSA, static_cast<int32_t>(CUBLAS_OP_T));
  set_desc(plan->desc.get(), CUBLASLT_MATMUL_DESC_TRANSB, static_cast<int32_t>(CUBLAS_OP_N));
  if (settings_.sm_target > 0)
    set_desc(plan->desc.get(), CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET,
             static_cast<int32_t>(settings_.sm_target));
  FANIN_CUDA_CHECK(cublasLtMatrixLayoutCreate(plan->a.out(), type, k, n, key.k));
  FANIN_CUDA_CHECK(cublasLtMatrixLayoutCreate(plan->b.out(), type, k, m, key.k));
  FANIN_CUDA_CHECK(cublasLtMatrixLayoutCreate(plan->d.out(), type, n, m, key.n));

  PreferenceHandle pref;
  FANIN_CUDA_CHECK(cublasLtMatmulPreferenceCreate(pref.out()));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
           static_cast<uint64_t>(workspace_.bytes()));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
           static_cast<uint32_t>(key.align_w));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
           static_cast<uint32_t>(key.align_x));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
           static_cast<uint32_t>(key.align_out));
  set_pref(pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
           static_cast<uint32_t>(key.align_out));

  // The first choice fuses what cuBLASLt can; the fallback fuses nothing.
  const bool fuse_relu = key.act == Activation::kRelu;
  cublasLtEpilogue_t fused = CUBLASLT_EPILOGUE_DEFAULT;
  if (key.has_bias)
    fused = fuse_relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  else if (fuse_relu)
    fused = CUBLASLT_EPILOGUE_RELU;

  auto try_epilogue = [&](cublasLtEpilogue_t epilogue) {
    set_desc(plan->desc.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, static_cast<uint32_t>(epilogue));
    const bool bias = epilogue == CUBLASLT_EPILOGUE_BIAS || epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    // The heuristic reads the bias pointer's value for its alignment.
    const void* bias_ptr = bias ? args.bias : nullptr;
    set_desc(plan->desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias_ptr);
    if (bias)
      set_desc(plan->desc.get(), CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, static_cast<int32_t>(type));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st =
        FANIN_CUDA_CHECK(cublasLtMatmulAlgoGetHeuristic(
                             handle_.get(), plan->desc.get(), plan->a.get(), plan->b.get(),
                             plan->d.get(), plan->d.get(), pref.get(), 1, &result, &found),
                         CUBLAS_STATUS_NOT_SUPPORTED);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) return false;
    plan->algo = result.algo;
    plan->epilogue_bias = bias;
    if (settings_.debug) print_plan(key, static_cast<int>(epilogue), result);
    return true;
  };

  if (try_epilogue(fused)) {
    plan->post_bias = false;
    plan->post_act = key.act == Activation::kGelu ? Activation::kGelu : Activation::kNone;
    return plan;
  }
  if (fused != CUBLASLT_EPILOGUE_DEFAULT && try_epilogue(CUBLASLT_EPILOGUE_DEFAULT)) {
    plan->post_bias = key.has_bias;
    plan->post_act = key.act;
    return plan;
  }
  FANIN_THROW(kDeviceError, "[cuda linear] cuBLASLt has no algorithm for m=", key.m, " n=", key.n,
              " k=", key.k, " dtype=", to_string(key.dtype), " (alignments x=", key.align_x,
              " w=", key.align_w, " out=", key.align_out, " bias=", key.align_bias, ", workspace ",
              workspace_.bytes(), " bytes)");
}

void Matmul::linear(cudaStream_t stream, const LinearArgs& args) {
  (void)cuda_type(args.dtype);  // rejects i32 before anything is enqueued
  FANIN_CHECK(args.m >= 0 && args.n >= 0 && args.k >= 0, kInvalidArgument,
              "[cuda linear] negative size m=", args.m, " n=", args.n, " k=", args.k);
  if (args.m == 0 || args.n == 0) return;
  if (args.k == 0) {
    // An empty sum: out = act(bias), or zeros. cuBLASLt rejects k = 0.
    FANIN_CUDA_CHECK(cudaMemsetAsync(
        args.out, 0, static_cast<size_t>(args.m * args.n) * dtype_size(args.dtype), stream));
    launch_bias_act(stream, args.out, args.bias, args.m, args.n, args.act, args.dtype);
    return;
  }

  Key key{};
  key.m = args.m;
  key.n = args.n;
  key.k = args.k;
  key.dtype = args.dtype;
  key.act = args.act;
  key.has_bias = args.bias != nullptr;
  key.align_x = alignment(args.x);
  key.align_w = alignment(args.w);
  key.align_out = alignment(args.out);
  key.align_bias = alignment(args.bias);
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    if (plans_.size() >= kMaxPlans) plans_.clear();
    it = plans_.emplace(key, make_plan(key, args)).first;
  }
  const Plan& plan = *it->second;
  if (plan.epilogue_bias) set_desc(plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, args.bias);

  const float alpha = 1.0f;
  const float beta = 0.0f;  // C (= out) is not read
  FANIN_CUDA_CHECK(cublasLtMatmul(handle_.get(), plan.desc.get(), &alpha, args.w, plan.a.get(),
                                  args.x, plan.b.get(), &beta, args.out, plan.d.get(), args.out,
                                  plan.d.get(), &plan.algo, workspace_.get(), workspace_.bytes(),
                                  stream));
  if (plan.post_bias || plan.post_act != Activation::kNone) {
    launch_bias_act(stream, args.out, plan.post_bias ? args.bias : nullptr, args.m, args.n,
                    plan.post_act, args.dtype);
  }
}

}  // namespace fanin::backend::cuda
