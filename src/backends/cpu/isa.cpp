// Feature-based kernel selection (Note [CPU kernel selection] in isa.h).
#include "backends/cpu/isa.h"

#include "backends/cpu/gemm.h"

#include <cpuid.h>
#include <strings.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>

// OpenBLAS's own entry points. The two dynamic ones exist only in builds for
// several cores (DYNAMIC_ARCH); weak, so a single-core build links too.
extern "C" char* openblas_get_corename(void);
extern "C" void gotoblas_dynamic_init(void) __attribute__((weak));
extern "C" void gotoblas_dynamic_quit(void) __attribute__((weak));

namespace fanin::backend::cpu {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

Isa detect() noexcept {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::kBaseline;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return Isa::kBaseline;
  const uint64_t xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return Isa::kBaseline;  // XMM and YMM state saved by the OS
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::kAvx;
  const bool avx2 = b & (1u << 5);
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool zmm_state = (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 high, ZMM16-31
  if (avx2 && fma && f && dq && bw && vl && zmm_state) return Isa::kAvx512;
  if (avx2 && fma) return Isa::kAvx2Fma;
  return Isa::kAvx;
}

const char* blas_core_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "SkylakeX";
    case Isa::kAvx2Fma: return "Haswell";
    case Isa::kAvx: return "Sandybridge";
    case Isa::kBaseline: return nullptr;
  }
  return nullptr;
}

// Asks OpenBLAS to select again with OPENBLAS_CORETYPE = `core`, then puts
// the variable back as it was.
void reselect(const char* core) {
  const char* old = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = old != nullptr ? old : "";
  const bool had = old != nullptr;
  setenv("OPENBLAS_CORETYPE", core, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  if (had) {
    setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  } else {
    unsetenv("OPENBLAS_CORETYPE");
  }
}

}  // namespace

BlasKernels select_blas_kernels() {
  BlasKernels k;
  k.dynamic_arch = gotoblas_dynamic_init != nullptr && gotoblas_dynamic_quit != nullptr;
  // Where this runs before OpenBLAS's own load-time constructor (a static
  // link), let it choose first; a no-op once it has.
  if (k.dynamic_arch) gotoblas_dynamic_init();
  k.detected_core = openblas_get_corename();
  if (const char* env = std::getenv("OPENBLAS_CORETYPE")) k.openblas_env = env;
  const char* forced = std::getenv("FANIN_OPENBLAS_CORETYPE");
  k.user_forced = forced != nullptr && *forced != '\0';
  const Isa want = isa();
  const char* better = blas_core_for(want);
  // Runs before any BLAS call of fanin's (from the load-time constructor
  // below, before main): OpenBLAS allocates its buffers at the first call,
  // so switching the kernel table here is safe.
  if (k.dynamic_arch && k.user_forced) {
    reselect(forced);
    k.reselected = true;
  } else if (k.dynamic_arch && better != nullptr && isa_of_blas_core(k.detected_core) != want) {
    // Narrower than the features allow (a misdetection), or wider (an
    // OPENBLAS_CORETYPE naming kernels this CPU cannot run).
    reselect(better);
    k.reselected = true;
  }
  k.core = openblas_get_corename();
  k.isa = isa_of_blas_core(k.core);
  return k;
}

namespace {

std::once_flag g_blas_once;
BlasKernels* g_blas = nullptr;  // written once under g_blas_once

// At load, while the process is one thread (setenv is not thread-safe).
__attribute__((constructor)) void select_at_load() { blas_kernels(); }

}  // namespace

const char* to_string(Isa isa) noexcept {
  switch (isa) {
    case Isa::kBaseline: return "baseline x86-64";
    case Isa::kAvx: return "AVX";
    case Isa::kAvx2Fma: return "AVX2+FMA";
    case Isa::kAvx512: return "AVX-512";
  }
  return "?";
}

Isa isa() noexcept {
  static const Isa v = detect();
  return v;
}

Isa isa_of_blas_core(const std::string& name) noexcept {
  static const struct {
    const char* name;
    Isa isa;
  } kCores[] = {
      {"SkylakeX", Isa::kAvx512},     {"Cooperlake", Isa::kAvx512},
      {"SapphireRapids", Isa::kAvx512}, {"Haswell", Isa::kAvx2Fma},
      {"Zen", Isa::kAvx2Fma},         {"Sandybridge", Isa::kAvx},
      {"Bulldozer", Isa::kAvx},       {"Piledriver", Isa::kAvx},
      {"Steamroller", Isa::kAvx},     {"Excavator", Isa::kAvx},
  };
  for (const auto& c : kCores)
    if (strcasecmp(name.c_str(), c.name) == 0) return c.isa;
  return Isa::kBaseline;
}

const BlasKernels& blas_kernels() {
  std::call_once(g_blas_once, [] { g_blas = new BlasKernels(select_blas_kernels()); });
  return *g_blas;
}

std::string blas_core_now() { return openblas_get_corename(); }

bool force_blas_core(const char* name) {
  if (gotoblas_dynamic_init == nullptr || gotoblas_dynamic_quit == nullptr) return false;
  reselect(name);
  return true;
}

std::string kernels_summary() {
  const BlasKernels& b = blas_kernels();
  std::string s = std::string(to_string(isa())) + " kernels, OpenBLAS " + b.core;
  if (b.user_forced) {
    s += " (FANIN_OPENBLAS_CORETYPE)";
  } else if (b.reselected) {
    s += " (it had chosen " + b.detected_core +
         (b.openblas_env.empty() ? std::string() : ", OPENBLAS_CORETYPE=" + b.openblas_env) + ")";
  }
  if (gemm_uses_onednn()) s += ", GEMM " + gemm_library();
  if (cpu_matmul() == CpuMatmul::kBf16) s += ", linear layers in bf16 (" + bf16_matmul_library() + ")";
  return s;
}

}  // namespace fanin::backend::cpu
