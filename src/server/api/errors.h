// server/api/errors.h: the one error table of fanin serve's three APIs.
//
// Contract: every request parser of src/server/api throws ApiError (and only
// ApiError) for a body it rejects; its message names the field at fault
// ("`input`[3] must be a string, got number"). An ApiError is API-neutral: it
// carries a Reason, and error_response() looks the status, the OpenAI error
// type and code, and TEI's error_type up in ONE table (docs/server.md, "API
// layer"), for ApiErrors and for the fanin::Error an Engine throws alike.
// Everything here is immutable after construction and safe to use from any
// thread; the functions are pure.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fanin/error.h"

namespace fanin::server::api {

// Which API a route speaks: picks the error body's shape and status.
enum class Api { kOpenAI, kTei, kKServe };

// "openai", "tei" or "kserve".
const char* to_string(Api api) noexcept;

// Why a request failed: the rows of the error table. The first nine mirror
// fanin::ErrorCode one to one; the rest are the protocol layer's own.
enum class Reason {
  kInvalidArgument,
  kPoolExhausted,
  kConcurrentEncoding,
  kQueueFull,
  kDeadlineExceeded,
  kCancelled,
  kOutOfMemory,
  kDeviceError,
  kUnavailable,
  kInvalidJson,      // not JSON, or nested deeper than the limit
  kValidation,       // a field of the wrong type or value
  kEmpty,            // no inputs, or an empty input
  kTooManyInputs,    // more inputs than max_client_batch_size
  kPayloadTooLarge,  // body over the server's limit
  kNotFound,         // unknown model (or route)
  kUnauthorized,     // missing or wrong API key
  kUnhealthy,        // the engine is not ready (health checks, shutdown)
};

// The Reason of an engine error code.
Reason reason_of(ErrorCode code) noexcept;

// The Reason's name, e.g. "TooManyInputs".
const char* to_string(Reason reason) noexcept;

// One cell of the table: what an API answers for a Reason.
struct ErrorClass {
  int status = 500;               // HTTP status
  const char* openai_type = "";   // OpenAI error.type (OpenAI only)
  const char* openai_code = "";   // OpenAI error.code; "" is null
  const char* tei_type = "";      // TEI error_type (TEI only)
};

// The table's cell for (api, reason).
ErrorClass classify(Api api, Reason reason) noexcept;

// TEI's te_request_failure{err=...} label of a Reason ("validation",
// "batch_size", "overloaded", "inference", "tokenization", ...).
const char* failure_label(Reason reason) noexcept;

// A rejected request. `param` names the offending field (OpenAI's
// error.param), empty when none.
class ApiError : public std::runtime_error {
 public:
  ApiError(Reason reason, std::string message, std::string param = {});

  // The table row.
  Reason reason() const noexcept { return reason_; }
  // The message without any prefix.
  const std::string& message() const noexcept { return message_; }
  // The offending field ("input", "dimensions"), or empty.
  const std::string& param() const noexcept { return param_; }
  // classify(api, reason()).status.
  int status(Api api) const noexcept { return classify(api, reason_).status; }

 private:
  Reason reason_;
  std::string message_;
  std::string param_;
};

// What a route sends back for an error.
struct ErrorBody {
  int status = 500;
  std::string body;  // application/json
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Retry-After
};

// The API's error response for a rejected request:
//   OpenAI {"error":{"message","type","param","code"}}
//   TEI    {"error","error_type"}
//   KServe {"error"}
// 429 and 503 carry `Retry-After: 1`.
ErrorBody error_response(Api api, const ApiError& error);
// The same for an engine error (its code picks the row).
ErrorBody error_response(Api api, const Error& error);
// The same for a bare reason and message.
ErrorBody error_response(Api api, Reason reason, std::string_view message,
                         std::string_view param = {});

}  // namespace fanin::server::api
