// Internal checking helpers; never included from public headers.
//
// Two kinds of check, never mixed (Note [Errors] in docs/design.md):
//   FANIN_CHECK(cond, code, parts...)  user input: throws fanin::Error whose
//                                      message is the concatenated parts.
//   FANIN_ASSERT(cond, parts...)       internal invariant: prints and aborts.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "fanin/error.h"

namespace fanin::detail {

template <typename... Parts>
std::string str(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

[[noreturn]] void throw_error(ErrorCode code, std::string message);
[[noreturn]] void assert_fail(const char* expr, const char* file, int line,
                              const std::string& message) noexcept;

}  // namespace fanin::detail

#define FANIN_CHECK(cond, code, ...)                                   \
  do {                                                                 \
    if (!(cond)) [[unlikely]] {                                        \
      ::fanin::detail::throw_error(::fanin::ErrorCode::code,           \
                                   ::fanin::detail::str(__VA_ARGS__)); \
    }                                                                  \
  } while (0)

#define FANIN_THROW(code, ...) \
  ::fanin::detail::throw_error(::fanin::ErrorCode::code, ::fanin::detail::str(__VA_ARGS__))

#define FANIN_ASSERT(cond, ...)                                                        \
  do {                                                                                 \
    if (!(cond)) [[unlikely]] {                                                        \
      ::fanin::detail::assert_fail(#cond, __FILE__, __LINE__,                          \
                                   ::fanin::detail::str("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                                  \
  } while (0)
