// server/api/float_text.cpp: write_float_text and write_float_list.
//
// Note [Fast float text]
// An embedding response is mostly floats (384 per MiniLM row), and
// std::to_chars(float), shortest round trip, took about 350 instructions
// each: over half of an I/O thread's instructions per single-sentence
// request (callgrind, scripts/serve_cpu_profile.sh). This writes every
// float with 9 significant digits instead, trailing zeros dropped, in
// about a third of that: |v| is scaled by a power of ten in double so that
// its integer part has 9 digits, rounded, and printed. Nine digits always
// read back to the same f32: a 9-digit decimal is within half a unit of its
// 9th digit of v (the double scaling adds ~1e-16 relative to that), at
// most 0.5e-8 |v|, while v's neighbours are more than 2^-25 |v| = 3e-8 |v|
// away. The text is up to two digits longer than the shortest (0.1f is
// 0.100000001, as printf("%.9g") writes it), in the form std::to_chars
// picks: fixed unless scientific is shorter. Values outside 1e-30 < |v| <
// 1e9, zero and subnormals go to std::to_chars (shortest). Checked against
// strtof on every positive finite f32 (negatives take the same path with a
// sign); tests/server/test_api_json.cpp checks whole binades and samples.
#include "server/api/float_text.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace fanin::server::api {
namespace {

// 10^i for i in [-31, 39] at index i + kPow10Bias, as doubles: 10^0..10^22
// exactly, the rest correctly rounded from their decimal literals.
constexpr int kPow10Bias = 31;
constexpr double kPow10d[] = {
    1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
    1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,  1e-8,  1e-7,  1e-6,
    1e-5,  1e-4,  1e-3,  1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,   1e5,   1e6,   1e7,
    1e8,   1e9,   1e10,  1e11,  1e12,  1e13,  1e14,  1e15,  1e16,  1e17,  1e18,  1e19,  1e20,
    1e21,  1e22,  1e23,  1e24,  1e25,  1e26,  1e27,  1e28,  1e29,  1e30,  1e31,  1e32,  1e33,
    1e34,  1e35,  1e36,  1e37,  1e38,  1e39};

constexpr char kDigits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// The 8 decimal digits of x < 10^8 as ASCII in text order (the first in the
// lowest byte, as memcpy stores it on a little-endian machine), computed in
// lanes: two 4-digit halves in 32-bit lanes, split into 2-digit pairs in
// 16-bit lanes, then into digits in bytes. (v * 10486) >> 20 is v / 100 for
// v < 10^4 and (v * 103) >> 10 is v / 10 for v < 100, and no lane's product
// reaches the next lane.
uint64_t eight_digits(uint32_t x) noexcept {
  static_assert(std::endian::native == std::endian::little);
  uint64_t v = uint64_t{x / 10000} | (uint64_t{x % 10000} << 32);
  uint64_t q = ((v * 10486) >> 20) & 0x0000007F0000007Full;
  v = q | ((v - q * 100) << 16);
  q = ((v * 103) >> 10) & 0x000F000F000F000Full;
  v = q | ((v - q * 10) << 8);
  return v + 0x3030303030303030ull;
}

// Writes the n digits d[0, n) (d[0] != '0', d[n - 1] != '0') times
// 10^exp10 as to_chars does. Stores are whole 16-byte blocks where the
// length varies (kFloatTextMax leaves room; d has 16 readable bytes past
// each start used): bytes past the returned end are scratch.
char* format(char* out, bool negative, const char* d, int n, int exp10) noexcept {
  *out = '-';
  out += negative;
  const int sci_exp = n - 1 + exp10;
  const int abs_exp = sci_exp < 0 ? -sci_exp : sci_exp;
  const int sci_len = n + (n > 1 ? 1 : 0) + 2 + (abs_exp >= 100 ? 3 : 2);
  const int int_digits = n + exp10;  // digits before the point in fixed form
  const int fixed_len = exp10 >= 0 ? int_digits : int_digits > 0 ? n + 1 : 2 - exp10;
  if (fixed_len <= sci_len) {
    if (int_digits <= 0) {  // 0.000ddd: at most 4 zeros, or scientific is shorter
      std::memcpy(out, "0.00000000000000", 16);
      std::memcpy(out + 2 - int_digits, d, 16);
    } else if (exp10 >= 0) {  // ddd000: at most 5 zeros
      std::memcpy(out, d, 16);
      std::memcpy(out + n, "0000000000000000", 16);
    } else {  // dd.ddd
      std::memcpy(out, d, 16);
      out[int_digits] = '.';
      std::memcpy(out + int_digits + 1, d + int_digits, 16);
    }
    return out + fixed_len;
  }
  out[0] = d[0];
  int len = 1;
  if (n > 1) {
    out[1] = '.';
    std::memcpy(out + 2, d + 1, 16);
    len = n + 1;
  }
  out[len++] = 'e';
  out[len++] = sci_exp < 0 ? '-' : '+';
  if (abs_exp >= 100) out[len++] = static_cast<char>('0' + abs_exp / 100);
  std::memcpy(out + len, kDigits2 + 2 * (abs_exp % 100), 2);
  return out + len + 2;
}

}  // namespace

char* write_float_text(char* out, float v) noexcept {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint32_t ieee_exp = (bits >> 23) & 0xFF;
  // Fast path: normal floats with 1e-30 < |v| < 1e9 (2^-99 .. 2^29 by the
  // exponent alone; the decimal checks below trim the edges).
  if (ieee_exp < 127 - 99 || ieee_exp > 127 + 29) return std::to_chars(out, out + kFloatTextMax, v).ptr;
  const bool negative = (bits >> 31) != 0;
  const double a = std::fabs(static_cast<double>(v));
  // e10 = floor(log10 a), from the binary exponent and one comparison.
  int e10 = ((static_cast<int>(ieee_exp) - 127) * 78913) >> 18;  // floor(e2 * log10 2)
  if (a >= kPow10d[static_cast<size_t>(e10 + 1 + kPow10Bias)]) ++e10;
  if (e10 < -30 || e10 > 8) return std::to_chars(out, out + kFloatTextMax, v).ptr;
  // m = a * 10^(8 - e10) rounded: 9 significant digits, 10^8 <= m <= 10^9.
  const int k = 8 - e10;
  double scaled = a * kPow10d[static_cast<size_t>(k + kPow10Bias)];
  auto m = static_cast<uint32_t>(scaled + 0.5);
  int exp10 = -k;
  if (m >= 1000000000u) m /= 10, ++exp10;  // 9.999999995 rounded up to 10.0000000
  char d[32] = {};  // the 9 digits of m, then zeros
  d[0] = static_cast<char>('0' + m / 100000000);
  const uint64_t rest = eight_digits(m % 100000000);
  std::memcpy(d + 1, &rest, 8);
  // Trailing zeros: the last bytes of `rest` (in text order) that are '0'.
  const uint64_t nonzero = rest ^ 0x3030303030303030ull;
  int n = nonzero == 0 ? 1 : 9 - std::countl_zero(nonzero) / 8;
  exp10 += 9 - n;
  return format(out, negative, d, n, exp10);
}

char* write_float_list(char* out, const float* v, size_t count) noexcept {
  for (size_t i = 0; i < count; ++i) {
    if (i != 0) *out++ = ',';
    if (std::isfinite(v[i])) {
      out = write_float_text(out, v[i]);
    } else {
      std::memcpy(out, "null", 4);
      out += 4;
    }
  }
  return out;
}

}  // namespace fanin::server::api
