// The shared JSON layer: bounded parsing, writers, UTF-8, base64, auth.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include "server/api/auth.h"
#include "server/api/embeddings.h"
#include "server/api/float_text.h"
#include "server/api/json.h"
#include "test_api_util.h"

namespace fanin::server::api {
namespace {

TEST(ApiJson, ParsesObjects) {
  const Json j = parse_json_object(R"({"a": [1, 2, {"b": "c"}]})");
  EXPECT_EQ(j["a"][2]["b"], "c");
}

TEST(ApiJson, InvalidJsonNamesTheBytePosition) {
  EXPECT_REJECTS(Api::kOpenAI, 400, "invalid JSON at byte 10", parse_json(R"({"a": tru})"));
  EXPECT_REJECTS(Api::kKServe, 400, "invalid JSON at byte", parse_json(""));
  EXPECT_REJECTS(Api::kTei, 400, "invalid JSON", parse_json(R"({"a": 1} trailing)"));
}

TEST(ApiJson, RejectsNestingDeeperThanTheLimit) {
  const std::string deep(1000, '[');
  EXPECT_REJECTS(Api::kOpenAI, 400, "nested deeper than 32", parse_json(deep));
  EXPECT_REJECTS(Api::kOpenAI, 400, "nested deeper than 32",
                 parse_json(std::string(33, '[') + std::string(33, ']')));
  EXPECT_NO_THROW(parse_json(std::string(32, '[') + std::string(32, ']')));
  std::string objects;
  for (int i = 0; i < 40; ++i) objects += "{\"a\":";
  EXPECT_REJECTS(Api::kTei, 400, "nested deeper than 8", parse_json(objects, 8));
  // Brackets inside strings (escaped quotes included) are text, not nesting.
  const std::string text = "{\"input\":\"\\\"" + std::string(40, '[') + "\\\"\",\"b\":[[1]]}";
  EXPECT_EQ(parse_json(text, 3)["input"].get<std::string>(), "\"" + std::string(40, '[') + "\"");
  EXPECT_REJECTS(Api::kOpenAI, 400, "nested deeper than 2", parse_json(text, 2));
  // A syntax error before the too-deep part is reported as such, as before.
  EXPECT_REJECTS(Api::kOpenAI, 400, "invalid JSON at byte 2", parse_json("[}" + deep, 32));
}

TEST(ApiJson, RejectsBodiesThatAreNotObjects) {
  EXPECT_REJECTS(Api::kOpenAI, 400, "request body must be a JSON object, got array",
                 parse_json_object("[1]"));
}

TEST(ApiJson, FieldReadersNameTheField) {
  const Json j = parse_json(R"({"s": 1, "b": "x", "i": 1.5, "big": 99})");
  EXPECT_REJECTS(Api::kOpenAI, 400, "`s` must be a string, got number", get_string(j, "s"));
  EXPECT_REJECTS(Api::kOpenAI, 400, "`b` must be a boolean, got string", get_bool(j, "b"));
  EXPECT_REJECTS(Api::kOpenAI, 400, "`i` must be an integer, got number", get_int(j, "i", 0, 9));
  EXPECT_REJECTS(Api::kOpenAI, 400, "`big` must be in [0, 9], got 99", get_int(j, "big", 0, 9));
  EXPECT_FALSE(get_string(j, "absent").has_value());
}

TEST(ApiJson, Utf8Validation) {
  EXPECT_TRUE(valid_utf8("plain ascii"));
  EXPECT_TRUE(valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(valid_utf8("\xE2\x82"));          // truncated
  EXPECT_FALSE(valid_utf8("\xFF"));
  EXPECT_EQ(utf8_length("caf\xC3\xA9"), 4u);
}

TEST(ApiJson, AppendStringEscapesAndReplacesInvalidUtf8) {
  std::string out;
  append_string(out, std::string_view("a\"b\\c\n\x01 \xC3\xA9 \xFF end", 16));
  const Json back = Json::parse(out);
  EXPECT_EQ(back.get<std::string>(), "a\"b\\c\n\x01 \xC3\xA9 \xEF\xBF\xBD end");
}

TEST(ApiJson, FloatTextRoundTripsExactly) {
  std::mt19937 rng(42);
  std::vector<float> values = {0.0f, -0.0f, 1.0f, -1.5f, 0.1f, 1e-45f, 1.17549435e-38f,
                               std::numeric_limits<float>::max(), 3.14159265f, 1e-5f};
  for (int i = 0; i < 20000; ++i) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isfinite(f)) values.push_back(f);
  }
  for (const float f : values) {
    std::string s;
    append_float(s, f);
    const float back = std::strtof(s.c_str(), nullptr);
    ASSERT_EQ(std::bit_cast<uint32_t>(back), std::bit_cast<uint32_t>(f)) << s;
    // And it is a JSON number nlohmann reads back to the same float.
    ASSERT_EQ(Json::parse(s).get<float>(), f) << s;
  }
  std::string s;
  append_float(s, std::numeric_limits<float>::quiet_NaN());
  append_float(s, std::numeric_limits<float>::infinity());
  EXPECT_EQ(s, "nullnull");
}

// write_float_text (Note [Fast float text]): every float of whole binades
// where embeddings live, both signs, the edges of its fast path, and
// random bit patterns read back to the same f32 through strtof, in at most
// 15 bytes.
TEST(ApiJson, FloatTextReadsBackToTheSameFloatEverywhere) {
  auto check = [](float f) {
    char buf[kFloatTextMax + 1];
    char* end = write_float_text(buf, f);
    *end = '\0';
    ASSERT_LE(end - buf, 15) << buf;
    const float back = std::strtof(buf, nullptr);
    ASSERT_EQ(std::bit_cast<uint32_t>(back), std::bit_cast<uint32_t>(f)) << buf;
  };
  // Every float of [2^-5, 2^-4), where most of a MiniLM row lies; every
  // 13th of other binades [2^e, 2^(e+1)), both signs.
  for (uint32_t b = 122u << 23; b < 123u << 23; ++b) check(std::bit_cast<float>(b));
  for (int e : {-1, -3, -8, -13, -27, -99, -100, 29, 30}) {
    const uint32_t lo = static_cast<uint32_t>(127 + e) << 23;
    for (uint32_t b = lo; b < lo + (1u << 23); b += 13) {
      check(std::bit_cast<float>(b));
      check(-std::bit_cast<float>(b));
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 1000000; ++i) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isfinite(f)) check(f);
  }
  for (float f : {0.0f, -0.0f, 1e-30f, 1e-31f, 9.99999e8f, 1e9f, 1e-45f, 1.17549435e-38f,
                  std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()})
    check(f);
}

// The form: 9 significant digits without trailing zeros, fixed unless
// scientific is shorter (as std::to_chars picks); std::to_chars' own text
// outside the fast path.
TEST(ApiJson, FloatTextForms) {
  auto text = [](float f) {
    char buf[kFloatTextMax];
    return std::string(buf, write_float_text(buf, f));
  };
  EXPECT_EQ(text(0.5f), "0.5");
  EXPECT_EQ(text(-0.25f), "-0.25");
  EXPECT_EQ(text(0.1f), "0.100000001");
  EXPECT_EQ(text(-0.004280056f), "-0.00428005587");
  EXPECT_EQ(text(1e-7f), "1.00000001e-07");
  EXPECT_EQ(text(3.0e-5f), "2.99999992e-05");
  EXPECT_EQ(text(1.0f), "1");
  EXPECT_EQ(text(100.0f), "100");
  EXPECT_EQ(text(1.5e6f), "1500000");
  EXPECT_EQ(text(123456792.0f), "123456792");
  EXPECT_EQ(text(3.14159274f), "3.14159274");
  EXPECT_EQ(text(0.0f), "0");
  EXPECT_EQ(text(-0.0f), "-0");
  EXPECT_EQ(text(1e10f), "1e+10");
  EXPECT_EQ(text(1e-40f), "1e-40");
}

// append_float_array writes in blocks of 48: every length around a block's
// end reads back as the same floats, with null for NaN and infinities.
TEST(ApiJson, FloatArrayReadsBack) {
  for (size_t n : {0u, 1u, 47u, 48u, 49u, 96u, 97u, 384u}) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = (static_cast<float>(i) - 40.5f) * 0.0123f;
    if (n > 48) v[48] = std::numeric_limits<float>::quiet_NaN();
    if (n > 47) v[47] = -std::numeric_limits<float>::infinity();
    std::string s = "x";
    append_float_array(s, v.data(), n);
    ASSERT_EQ(s[0], 'x');
    const Json j = Json::parse(s.substr(1));
    ASSERT_EQ(j.size(), n) << s;
    for (size_t i = 0; i < n; ++i) {
      if (std::isfinite(v[i])) EXPECT_EQ(j[i].get<float>(), v[i]) << i;
      else EXPECT_TRUE(j[i].is_null()) << i;
    }
  }
}

TEST(ApiJson, Base64OfFloatsDecodesToTheSameFloats) {
  const float known[] = {1.0f, -2.0f, 0.5f};  // Python: base64.b64encode(struct.pack("<3f", ...))
  EXPECT_EQ(base64_f32(known, 1), "AACAPw==");
  EXPECT_EQ(base64_f32(known, 2), "AACAPwAAAMA=");
  EXPECT_EQ(base64_f32(known, 3), "AACAPwAAAMAAAAA/");
  for (size_t n : {0u, 1u, 2u, 3u, 384u}) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * 0.37f - 3.0f;
    const std::string b64 = base64_f32(v.data(), n);
    EXPECT_EQ(b64.size(), (n * 4 + 2) / 3 * 4);
    const auto bytes = base64_decode(b64);
    ASSERT_TRUE(bytes.has_value());
    ASSERT_EQ(bytes->size(), n * 4);
    std::vector<float> back(n);
    if (n != 0) std::memcpy(back.data(), bytes->data(), n * 4);
    EXPECT_EQ(back, v);
  }
  // A known vector: 1.0f is 00 00 80 3F little-endian.
  const float one = 1.0f;
  EXPECT_EQ(base64_f32(&one, 1), "AACAPw==");
  EXPECT_FALSE(base64_decode("abc").has_value());
  EXPECT_FALSE(base64_decode("a=bc").has_value());
}

TEST(ApiAuth, BearerMatchesOnlyTheKey) {
  EXPECT_TRUE(bearer_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(bearer_matches("bearer   s3cret ", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearer s3cres", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(bearer_matches("Basic s3cret", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearers3cret", "s3cret"));
  EXPECT_FALSE(bearer_matches("", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearer ", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
}

}  // namespace
}  // namespace fanin::server::api
