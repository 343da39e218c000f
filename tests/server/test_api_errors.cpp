// THE error table: every engine code and protocol reason, in every API.
#include <gtest/gtest.h>

#include "server/api/errors.h"
#include "server/api/json.h"

namespace fanin::server::api {
namespace {

struct Expected {
  ErrorCode code;
  int openai;
  const char* openai_type;
  int tei;
  const char* tei_type;
  int kserve;
};

// docs/server.md, "API layer": the same table, row for row.
const Expected kEngineRows[] = {
    {ErrorCode::kInvalidArgument, 400, "invalid_request_error", 422, "Validation", 400},
    {ErrorCode::kPoolExhausted, 503, "server_error", 429, "Overloaded", 503},
    {ErrorCode::kConcurrentEncoding, 500, "server_error", 424, "Backend", 500},
    {ErrorCode::kQueueFull, 429, "server_error", 429, "Overloaded", 503},
    {ErrorCode::kDeadlineExceeded, 504, "server_error", 504, "Backend", 504},
    {ErrorCode::kCancelled, 503, "server_error", 503, "Unhealthy", 503},
    {ErrorCode::kOutOfMemory, 503, "server_error", 424, "Backend", 503},
    {ErrorCode::kDeviceError, 500, "server_error", 424, "Backend", 500},
    {ErrorCode::kUnavailable, 503, "server_error", 503, "Unhealthy", 503},
};

TEST(ApiErrors, EveryEngineCodeInEveryApi) {
  for (const Expected& row : kEngineRows) {
    SCOPED_TRACE(to_string(row.code));
    const Error err(row.code, "boom \"quoted\"");
    const ErrorBody o = error_response(Api::kOpenAI, err);
    const ErrorBody t = error_response(Api::kTei, err);
    const ErrorBody k = error_response(Api::kKServe, err);
    EXPECT_EQ(o.status, row.openai);
    EXPECT_EQ(t.status, row.tei);
    EXPECT_EQ(k.status, row.kserve);
    const Json oj = Json::parse(o.body), tj = Json::parse(t.body), kj = Json::parse(k.body);
    EXPECT_EQ(oj["error"]["message"], "boom \"quoted\"");  // no "<Code>: " prefix
    EXPECT_EQ(oj["error"]["type"], row.openai_type);
    EXPECT_TRUE(oj["error"].contains("param"));
    EXPECT_TRUE(oj["error"].contains("code"));
    EXPECT_EQ(tj["error"], "boom \"quoted\"");
    EXPECT_EQ(tj["error_type"], row.tei_type);
    EXPECT_EQ(kj, Json({{"error", "boom \"quoted\""}}));
    for (const ErrorBody* b : {&o, &t, &k}) {
      const bool retry_after = !b->headers.empty() && b->headers[0].first == "Retry-After";
      EXPECT_EQ(retry_after, b->status == 429 || b->status == 503) << b->status;
    }
  }
}

TEST(ApiErrors, ProtocolReasons) {
  struct R {
    Reason reason;
    int openai, tei, kserve;
    const char* tei_type;
  };
  const R rows[] = {
      {Reason::kInvalidJson, 400, 400, 400, "Validation"},
      {Reason::kValidation, 400, 422, 400, "Validation"},
      {Reason::kEmpty, 400, 400, 400, "Empty"},
      {Reason::kTooManyInputs, 400, 422, 400, "Validation"},
      {Reason::kPayloadTooLarge, 413, 413, 413, "Validation"},
      {Reason::kNotFound, 404, 404, 404, "Validation"},
      {Reason::kUnauthorized, 401, 401, 401, "Validation"},
      {Reason::kUnhealthy, 503, 503, 503, "Unhealthy"},
  };
  for (const R& r : rows) {
    SCOPED_TRACE(to_string(r.reason));
    const ApiError e(r.reason, "msg", "input");
    EXPECT_EQ(e.status(Api::kOpenAI), r.openai);
    EXPECT_EQ(e.status(Api::kTei), r.tei);
    EXPECT_EQ(e.status(Api::kKServe), r.kserve);
    EXPECT_STREQ(classify(Api::kTei, r.reason).tei_type, r.tei_type);
    EXPECT_EQ(Json::parse(error_response(Api::kOpenAI, e).body)["error"]["param"], "input");
  }
}

TEST(ApiErrors, OpenAIBodyShape) {
  const ErrorBody b = error_response(Api::kOpenAI, ApiError(Reason::kValidation, "bad", ""));
  EXPECT_EQ(b.body,
            R"({"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}})");
  const ErrorBody q = error_response(Api::kOpenAI, Error(ErrorCode::kQueueFull, "full"));
  EXPECT_EQ(Json::parse(q.body)["error"]["code"], "queue_full");
  ASSERT_EQ(q.headers.size(), 1u);
  EXPECT_EQ(q.headers[0], (std::pair<std::string, std::string>{"Retry-After", "1"}));
  EXPECT_EQ(Json::parse(error_response(Api::kOpenAI, Reason::kUnauthorized, "no").body)
                ["error"]["code"],
            "invalid_api_key");
}

TEST(ApiErrors, BodiesStayValidJsonForInvalidUtf8Messages) {
  const Error err(ErrorCode::kInvalidArgument, "input 0 is not UTF-8: \xFF\xFE");
  for (Api api : {Api::kOpenAI, Api::kTei, Api::kKServe})
    EXPECT_NO_THROW(Json::parse(error_response(api, err).body)) << to_string(api);
}

TEST(ApiErrors, FailureLabelsFollowTei) {
  EXPECT_STREQ(failure_label(Reason::kTooManyInputs), "batch_size");
  EXPECT_STREQ(failure_label(Reason::kValidation), "validation");
  EXPECT_STREQ(failure_label(reason_of(ErrorCode::kQueueFull)), "overloaded");
  EXPECT_STREQ(failure_label(reason_of(ErrorCode::kDeviceError)), "inference");
}

}  // namespace
}  // namespace fanin::server::api
