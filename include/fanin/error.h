// fanin/error.h: the one exception type fanin throws, and its codes.
//
// Contract: every user mistake (bad shape, wrong dtype, exhausted pool, full
// queue, ...) raises fanin::Error with a code and a message that names the
// operation and the values involved, e.g.
//   "[linear] x has 513 columns, weight expects 512".
// Broken internal invariants are not user errors: they use FANIN_ASSERT
// (src/core/check.h) and abort. Error is immutable and safe to copy and to
// read from any thread.
#pragma once

#include <stdexcept>
#include <string>

namespace fanin {

// What went wrong, in a form a caller can branch on.
enum class ErrorCode {
  kInvalidArgument,     // bad shape, dtype, size, file, option value
  kPoolExhausted,       // every stream slot leased for longer than the timeout
  kConcurrentEncoding,  // a second thread began encoding into a busy command buffer
  kQueueFull,           // a request queue is at its maximum length
  kDeadlineExceeded,    // a request's deadline passed before it ran
  kCancelled,           // a request was cancelled or its queue shut down
  kOutOfMemory,         // the device allocator could not satisfy a request
  kDeviceError,         // the device or its library reported a failure
  kUnavailable,         // backend or device not built / not present
};

// The code's name without the leading k, e.g. "PoolExhausted".
const char* to_string(ErrorCode code) noexcept;

// The exception fanin throws. what() is "<Code>: <message>".
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);

  // The code given at construction.
  ErrorCode code() const noexcept { return code_; }
  // The message without the "<Code>: " prefix.
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

}  // namespace fanin
