// Which vector instructions the CPU backend's kernels use, chosen from the
// CPU's feature flags (cpuid and the OS's saved register state), never from
// its model name (Note [CPU kernel selection]). Thread-safe: everything here
// is decided once, before the first kernel runs, and only read afterwards.
//
// Note [CPU kernel selection]
// Virtual machines often hide or invent the CPU model, and OpenBLAS 0.3.21
// (Debian 12) picks its kernels from the vendor's family/model tables: an
// Intel model it does not know falls back to `Prescott` (SSE3), which made
// the encoder 2.7x slower on a 16-core Xeon VM. So, at load:
//  1. isa() reads the features (AVX-512 F/DQ/BW/VL, AVX2+FMA, AVX) and
//     checks that the OS saves the wider registers (xgetbv);
//  2. if OpenBLAS was built for several cores (DYNAMIC_ARCH, as Debian's is)
//     and the core it chose uses a narrower ISA than the features allow (or
//     a wider one, which would fault), it is asked again with
//     OPENBLAS_CORETYPE naming the widest core the features support
//     (SkylakeX for AVX-512, Haswell for AVX2+FMA, Sandybridge for AVX):
//     gotoblas_dynamic_quit() + gotoblas_dynamic_init() re-run its own
//     selection, which reads that variable; the variable is
//     put back as it was after. An OPENBLAS_CORETYPE in the environment
//     counts as OpenBLAS's choice: one narrower than the features allow is
//     raised too (some images set OPENBLAS_CORETYPE=Haswell for every
//     program; on an AVX-512 machine that halves the encoder's speed). To
//     force a core for fanin, set FANIN_OPENBLAS_CORETYPE (any OpenBLAS
//     core name): it is used as given;
//  3. fanin's own kernels (layernorm, GELU, softmax, residual adds;
//     vec_kernels.cpp) are compiled three times (AVX-512, AVX2+FMA,
//     baseline x86-64) and the widest the features allow is used.
// The binary itself stays baseline x86-64: it runs on any x86-64 CPU.
#pragma once

#include <string>

namespace fanin::backend::cpu {

enum class Isa : int { kBaseline = 0, kAvx = 1, kAvx2Fma = 2, kAvx512 = 3 };

const char* to_string(Isa isa) noexcept;

// The widest ISA this CPU and OS support (feature flags only).
Isa isa() noexcept;

// The ISA of fanin's own vector kernels (vec_kernels.h), as dispatched.
Isa vec_kernel_isa() noexcept;

struct BlasKernels {
  std::string core;           // OpenBLAS's core now ("SkylakeX", "Haswell", ...)
  std::string detected_core;  // what OpenBLAS chose by itself at load
  Isa isa = Isa::kBaseline;   // the ISA of `core`'s kernels
  bool reselected = false;    // fanin asked OpenBLAS again (Note [CPU kernel selection])
  bool user_forced = false;   // FANIN_OPENBLAS_CORETYPE named the core
  std::string openblas_env;   // OPENBLAS_CORETYPE at selection time, if set
  bool dynamic_arch = false;  // OpenBLAS can switch cores at run time
};

// OpenBLAS's kernels as selected (step 2 of the note); the first call makes
// the selection if the load-time constructor has not.
const BlasKernels& blas_kernels();

// Runs step 2 now and returns what it did. It runs once at load; call it
// again only before any BLAS call is in flight (tests that first force a
// narrow core, as a VM's misdetection would).
BlasKernels select_blas_kernels();

// OpenBLAS's current core name.
std::string blas_core_now();
// Switches OpenBLAS to core `name` as OPENBLAS_CORETYPE would at load (tests
// simulate a VM's misdetection with "Prescott"); false where OpenBLAS is
// built for one core. Same precondition as select_blas_kernels().
bool force_blas_core(const char* name);

// The ISA that OpenBLAS's core `name` uses (case-insensitive).
Isa isa_of_blas_core(const std::string& name) noexcept;

// One line for describe(): ISA and BLAS core.
std::string kernels_summary();

}  // namespace fanin::backend::cpu
