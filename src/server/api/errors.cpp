#include "server/api/errors.h"

#include "server/api/json.h"

namespace fanin::server::api {
namespace {

// One row of THE table (docs/server.md, "API layer"): a Reason's answer in
// each API, and its te_request_failure label.
struct Row {
  Reason reason;
  int openai_status;
  const char* openai_type;
  const char* openai_code;
  int tei_status;
  const char* tei_type;
  int kserve_status;
  const char* failure;
};

constexpr const char* kInvalid = "invalid_request_error";
constexpr const char* kServer = "server_error";

// Indexed by Reason.
constexpr Row kTable[] = {
    {Reason::kInvalidArgument, 400, kInvalid, "", 422, "Validation", 400, "validation"},
    {Reason::kPoolExhausted, 503, kServer, "pool_exhausted", 429, "Overloaded", 503, "overloaded"},
    {Reason::kConcurrentEncoding, 500, kServer, "", 424, "Backend", 500, "inference"},
    {Reason::kQueueFull, 429, kServer, "queue_full", 429, "Overloaded", 503, "overloaded"},
    {Reason::kDeadlineExceeded, 504, kServer, "timeout", 504, "Backend", 504, "deadline"},
    {Reason::kCancelled, 503, kServer, "cancelled", 503, "Unhealthy", 503, "cancelled"},
    {Reason::kOutOfMemory, 503, kServer, "out_of_memory", 424, "Backend", 503, "inference"},
    {Reason::kDeviceError, 500, kServer, "", 424, "Backend", 500, "inference"},
    {Reason::kUnavailable, 503, kServer, "unavailable", 503, "Unhealthy", 503, "unavailable"},
    {Reason::kInvalidJson, 400, kInvalid, "", 400, "Validation", 400, "validation"},
    {Reason::kValidation, 400, kInvalid, "", 422, "Validation", 400, "validation"},
    {Reason::kEmpty, 400, kInvalid, "", 400, "Empty", 400, "validation"},
    {Reason::kTooManyInputs, 400, kInvalid, "", 422, "Validation", 400, "batch_size"},
    {Reason::kPayloadTooLarge, 413, kInvalid, "", 413, "Validation", 413, "payload_too_large"},
    {Reason::kNotFound, 404, kInvalid, "model_not_found", 404, "Validation", 404, "not_found"},
    {Reason::kUnauthorized, 401, kInvalid, "invalid_api_key", 401, "Validation", 401,
     "unauthorized"},
    {Reason::kUnhealthy, 503, kServer, "unavailable", 503, "Unhealthy", 503, "unhealthy"},
};
constexpr size_t kRows = sizeof(kTable) / sizeof(kTable[0]);
static_assert(kRows == static_cast<size_t>(Reason::kUnhealthy) + 1, "one row per Reason");

constexpr bool rows_in_order() {
  for (size_t i = 0; i < kRows; ++i)
    if (static_cast<size_t>(kTable[i].reason) != i) return false;
  return true;
}
static_assert(rows_in_order(), "kTable is indexed by Reason");

const Row& row(Reason reason) noexcept {
  const auto i = static_cast<size_t>(reason);
  return kTable[i < kRows ? i : static_cast<size_t>(Reason::kDeviceError)];
}

}  // namespace

const char* to_string(Api api) noexcept {
  switch (api) {
    case Api::kOpenAI: return "openai";
    case Api::kTei: return "tei";
    case Api::kKServe: return "kserve";
  }
  return "unknown";
}

Reason reason_of(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return Reason::kInvalidArgument;
    case ErrorCode::kPoolExhausted: return Reason::kPoolExhausted;
    case ErrorCode::kConcurrentEncoding: return Reason::kConcurrentEncoding;
    case ErrorCode::kQueueFull: return Reason::kQueueFull;
    case ErrorCode::kDeadlineExceeded: return Reason::kDeadlineExceeded;
    case ErrorCode::kCancelled: return Reason::kCancelled;
    case ErrorCode::kOutOfMemory: return Reason::kOutOfMemory;
    case ErrorCode::kDeviceError: return Reason::kDeviceError;
    case ErrorCode::kUnavailable: return Reason::kUnavailable;
  }
  return Reason::kDeviceError;
}

const char* to_string(Reason reason) noexcept {
  switch (reason) {
    case Reason::kInvalidArgument: return "InvalidArgument";
    case Reason::kPoolExhausted: return "PoolExhausted";
    case Reason::kConcurrentEncoding: return "ConcurrentEncoding";
    case Reason::kQueueFull: return "QueueFull";
    case Reason::kDeadlineExceeded: return "DeadlineExceeded";
    case Reason::kCancelled: return "Cancelled";
    case Reason::kOutOfMemory: return "OutOfMemory";
    case Reason::kDeviceError: return "DeviceError";
    case Reason::kUnavailable: return "Unavailable";
    case Reason::kInvalidJson: return "InvalidJson";
    case Reason::kValidation: return "Validation";
    case Reason::kEmpty: return "Empty";
    case Reason::kTooManyInputs: return "TooManyInputs";
    case Reason::kPayloadTooLarge: return "PayloadTooLarge";
    case Reason::kNotFound: return "NotFound";
    case Reason::kUnauthorized: return "Unauthorized";
    case Reason::kUnhealthy: return "Unhealthy";
  }
  return "Unknown";
}

ErrorClass classify(Api api, Reason reason) noexcept {
  const Row& r = row(reason);
  switch (api) {
    case Api::kOpenAI: return {r.openai_status, r.openai_type, r.openai_code, ""};
    case Api::kTei: return {r.tei_status, "", "", r.tei_type};
    case Api::kKServe: return {r.kserve_status, "", "", ""};
  }
  return {500, "", "", ""};
}

const char* failure_label(Reason reason) noexcept { return row(reason).failure; }

ApiError::ApiError(Reason reason, std::string message, std::string param)
    : std::runtime_error(message),
      reason_(reason),
      message_(std::move(message)),
      param_(std::move(param)) {}

ErrorBody error_response(Api api, Reason reason, std::string_view message,
                         std::string_view param) {
  const ErrorClass c = classify(api, reason);
  ErrorBody out;
  out.status = c.status;
  std::string& b = out.body;
  b.reserve(message.size() + 96);
  switch (api) {
    case Api::kOpenAI:
      b += "{\"error\":{";
      append_key(b, "message");
      append_string(b, message);
      b += ',';
      append_key(b, "type");
      append_string(b, c.openai_type);
      b += ',';
      append_key(b, "param");
      if (param.empty()) b += "null";
      else append_string(b, param);
      b += ',';
      append_key(b, "code");
      if (*c.openai_code == '\0') b += "null";
      else append_string(b, c.openai_code);
      b += "}}";
      break;
    case Api::kTei:
      b += '{';
      append_key(b, "error");
      append_string(b, message);
      b += ',';
      append_key(b, "error_type");
      append_string(b, c.tei_type);
      b += '}';
      break;
    case Api::kKServe:
      b += '{';
      append_key(b, "error");
      append_string(b, message);
      b += '}';
      break;
  }
  if (c.status == 429 || c.status == 503) out.headers.emplace_back("Retry-After", "1");
  return out;
}

ErrorBody error_response(Api api, const ApiError& error) {
  return error_response(api, error.reason(), error.message(), error.param());
}

ErrorBody error_response(Api api, const Error& error) {
  return error_response(api, reason_of(error.code()), error.message());
}

}  // namespace fanin::server::api
