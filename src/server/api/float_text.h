// server/api/float_text.h: a decimal text of an f32 that reads back to the
// same f32, fast (Note [Fast float text] in float_text.cpp). Pure
// functions, thread-safe.
#pragma once

#include <cstddef>

namespace fanin::server::api {

// The room write_float_text needs: the longest text ("-1.17549435e-38") is
// 15 bytes, and it may store up to this many (bytes past the text's end are
// scratch).
inline constexpr size_t kFloatTextMax = 40;

// Writes the text of finite `v` at `out` (kFloatTextMax bytes of room) and
// returns its end: 9 significant digits (trailing zeros dropped), which
// strtof and every JSON reader turn back into exactly `v`, in fixed form
// unless scientific ("1.5e-07") is shorter, as std::to_chars chooses. Zero,
// subnormals and |v| outside (1e-30, 1e9) get std::to_chars' shortest text.
char* write_float_text(char* out, float v) noexcept;

// Writes v[0, count) as write_float_text texts separated by commas (null for
// NaN and infinities) at `out`, which has room for count * kFloatListStride
// bytes, and returns the end.
inline constexpr size_t kFloatListStride = kFloatTextMax + 1;
char* write_float_list(char* out, const float* v, size_t count) noexcept;

}  // namespace fanin::server::api
