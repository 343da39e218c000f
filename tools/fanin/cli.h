// tools/fanin/cli.h: what every `fanin` subcommand shares: exit codes, the
// usage-error type, and small host helpers.
//
// Exit codes (documented in `fanin --help`):
//   0  success
//   1  the run failed: a fanin::Error (device unavailable, out of memory,
//      ...), or a check the command makes did not hold (race: a test FAILed)
//   2  bad command line: unknown option, bad value, unsupported combination
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace fanin::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// A bad command-line value found after parsing; main prints it and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws UsageError unless `backend` is "cpu", "cuda" or "cuda:N". Whether
// that device is present is Device::get's question (Unavailable, exit 1).
void check_backend_name(const std::string& backend);

// The git commit of the tree this binary was built from, read at build
// time, e.g. "e0ac6581f293" or "e0ac6581f293-dirty" (tools/fanin/commit.cmake).
const char* build_commit() noexcept;

// The current UTC time as ISO-8601, e.g. "2026-11-25T14:03:07Z".
std::string utc_now_iso8601();

// This machine's host name ("unknown" if it cannot be read).
std::string host_name();

// "1,2,4".
std::string join(const std::vector<int>& values, const char* sep = ",");

}  // namespace fanin::cli
