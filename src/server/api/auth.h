// server/api/auth.h: API-key checks.
//
// Contract: pure and thread-safe; the comparison's time depends on the
// lengths only, never on the bytes of the key.
#pragma once

#include <string_view>

namespace fanin::server::api {

// True when `a` and `b` are equal, in time independent of their content.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// True when `authorization` (an Authorization header's value) is
// "Bearer <key>" (scheme case-insensitive, spaces around the token allowed)
// with <key> equal to `key`. An empty `key` accepts nothing.
bool bearer_matches(std::string_view authorization, std::string_view key) noexcept;

}  // namespace fanin::server::api
