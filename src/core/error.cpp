#include "fanin/error.h"

#include <cstdio>
#include <cstdlib>

#include "core/check.h"

namespace fanin {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kPoolExhausted: return "PoolExhausted";
    case ErrorCode::kConcurrentEncoding: return "ConcurrentEncoding";
    case ErrorCode::kQueueFull: return "QueueFull";
    case ErrorCode::kDeadlineExceeded: return "DeadlineExceeded";
    case ErrorCode::kCancelled: return "Cancelled";
    case ErrorCode::kOutOfMemory: return "OutOfMemory";
    case ErrorCode::kDeviceError: return "DeviceError";
    case ErrorCode::kUnavailable: return "Unavailable";
  }
  return "Unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string(to_string(code)) + ": " + message),
      code_(code),
      message_(message) {}

namespace detail {

void throw_error(ErrorCode code, std::string message) { throw Error(code, message); }

void assert_fail(const char* expr, const char* file, int line,
                 const std::string& message) noexcept {
  std::fprintf(stderr, "fanin internal assertion failed: %s at %s:%d %s\n", expr, file, line,
               message.c_str());
  std::abort();
}

}  // namespace detail
}  // namespace fanin
