// Shared by the fanin_api tests: assert that a call is rejected with an
// ApiError of a given status (for one API) whose message contains a needle.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "server/api/errors.h"

namespace fanin::server::api::test {

template <typename F>
void expect_rejects(Api api, int status, std::string_view needle, F&& call) {
  try {
    call();
    ADD_FAILURE() << "expected an ApiError (" << status << ", \"" << needle << "\"), got none";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(api), status) << "message: " << e.message();
    EXPECT_NE(e.message().find(needle), std::string::npos)
        << "message \"" << e.message() << "\" lacks \"" << needle << "\"";
  }
}

}  // namespace fanin::server::api::test

// EXPECT_REJECTS(api, status, "needle", expression): the expression throws an
// ApiError with that status whose message names the needle.
#define EXPECT_REJECTS(which_api, status, needle, ...)                           \
  do {                                                                           \
    SCOPED_TRACE(#__VA_ARGS__);                                                  \
    ::fanin::server::api::test::expect_rejects(which_api, status, needle,        \
                                               [&] { (void)(__VA_ARGS__); });    \
  } while (0)
