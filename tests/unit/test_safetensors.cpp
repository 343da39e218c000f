// The .safetensors reader and writer (models/safetensors.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "models/safetensors.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::throws_error;
namespace fs = std::filesystem;

std::vector<uint8_t> img(const std::string& header, const std::string& data = "") {
  const uint64_t n = header.size();
  std::vector<uint8_t> out(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return out;
}

::testing::AssertionResult rejects(const std::string& header, const std::string& data,
                                   std::initializer_list<std::string> parts) {
  const auto bytes = img(header, data);
  return fanin::testing::throws_error(
      [&] { safetensors::parse(bytes.data(), bytes.size(), "'test.st'"); },
      ErrorCode::kInvalidArgument, parts);
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (fs::temp_directory_path() /
             ("fanin_st_" + std::string(info->name()) + "_" + std::to_string(::getpid()) +
              ".safetensors"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }
  std::string path_;
};

TEST_F(Safetensors, WriteThenOpenRoundTrips) {
  std::vector<safetensors::NamedData> in = {
      {"a", DType::kF32, {2, 2}, {0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64}},
      {"b.half", DType::kF16, {3}, {0, 60, 0, 64, 0, 188}},
      {"c", DType::kBF16, {1}, {128, 63}},
      {"d", DType::kI32, {2}, {1, 0, 0, 0, 255, 255, 255, 255}},
      {"empty", DType::kF32, {0, 4}, {}},
  };
  safetensors::write(path_, in);
  auto f = safetensors::File::open(path_);
  EXPECT_EQ(f->path(), path_);
  EXPECT_EQ(f->tensors().size(), in.size());
  for (const auto& t : in) {
    ASSERT_TRUE(f->contains(t.name)) << t.name;
    const auto& v = f->at(t.name);
    EXPECT_EQ(v.dtype, t.dtype) << t.name;
    EXPECT_EQ(v.shape, t.shape) << t.name;
    ASSERT_EQ(v.bytes, t.data.size()) << t.name;
    if (v.bytes > 0) {
      EXPECT_EQ(std::memcmp(v.data, t.data.data(), v.bytes), 0) << t.name;
    }
  }
  EXPECT_TRUE(throws_error([&] { f->at("nope"); }, ErrorCode::kInvalidArgument,
                           {path_, "no tensor 'nope'"}));
  // The header is padded so that the data starts 8-byte aligned.
  std::ifstream raw(path_, std::ios::binary);
  uint8_t size_bytes[8];
  raw.read(reinterpret_cast<char*>(size_bytes), 8);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | size_bytes[i];
  EXPECT_EQ(header % 8, 0u);
}

TEST_F(Safetensors, WriteChecksSizes) {
  EXPECT_TRUE(throws_error(
      [&] { safetensors::write(path_, {{"w", DType::kF32, {2, 2}, std::vector<uint8_t>(12)}}); },
      ErrorCode::kInvalidArgument, {"[safetensors::write]", "'w'", "12 bytes", "[2, 2]", "16"}));
  EXPECT_TRUE(throws_error(
      [&] { safetensors::write("/nonexistent-dir/x.safetensors", {}); },
      ErrorCode::kInvalidArgument, {"cannot write", "/nonexistent-dir/x.safetensors"}));
}

TEST_F(Safetensors, ReadsMetadata) {
  std::map<std::string, std::string> meta;
  const auto bytes = img(R"({"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                         "abcd");
  auto t = safetensors::parse(bytes.data(), bytes.size(), "mem", &meta);
  EXPECT_EQ(meta.at("format"), "pt");
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.count("__metadata__"), 0u);
  EXPECT_TRUE(rejects(R"({"__metadata__":{"n":1}})", "", {"__metadata__", "'n'", "not a string"}));
  EXPECT_TRUE(rejects(R"({"__metadata__":[]})", "", {"__metadata__ is not an object"}));
}

TEST_F(Safetensors, RejectsMalformedEntries) {
  EXPECT_TRUE(rejects(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", "abcd",
                      {"'test.st'", "'x'", "no dtype"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", "abcd",
                      {"'x'", "no shape"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[1]}})", "abcd", {"'x'", "data_offsets"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd",
                      {"'x'", "data_offsets [begin, end]"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd",
                      {"'x'", "bad shape entry -1"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "abcd",
                      {"'x'", "bad shape entry 1.5"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", "abcd",
                      {"'x'", "non-integer data_offsets"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"Q7","shape":[4],"data_offsets":[0,4]}})", "abcd",
                      {"'x'", "unknown dtype Q7"}));
  // A format dtype fanin does not compute with still has its layout checked.
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"I64","shape":[1],"data_offsets":[0,4]}})", "abcd",
                      {"'x'", "span 4 bytes"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd",
                      {"'x'", "[2]", "8 bytes", "span 4 bytes"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd",
                      {"'x'", "[4, 0]", "outside the data area"}));
  EXPECT_TRUE(rejects(R"({"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
                      "abcd", {"'x'", "9 dimensions"}));
  EXPECT_TRUE(rejects(
      R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "abcd",
      {"too many elements"}));
}

TEST_F(Safetensors, RejectsOverlapsButAcceptsAdjacentAndEmptyTensors) {
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                      "12345678", {"'a'", "'b'", "overlap"}));
  const auto ok = img(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                      "12345678");
  EXPECT_EQ(safetensors::parse(ok.data(), ok.size(), "mem").size(), 3u);
}

// Tensors of dtypes fanin does not read (e.g. an I64 position_ids in a BERT
// file) do not stop the file from opening; reading one is the error.
TEST_F(Safetensors, UnsupportedDtypesOpenButCannotBeRead) {
  const auto bytes = img(R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                         R"("w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}})",
                         std::string(20, '\0'));
  {
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  auto f = safetensors::File::open(path_);
  EXPECT_TRUE(f->contains("ids"));
  EXPECT_EQ(f->at("w").dtype, DType::kF32);
  EXPECT_TRUE(throws_error([&] { f->at("ids"); }, ErrorCode::kInvalidArgument,
                           {path_, "'ids'", "dtype I64"}));
}

TEST_F(Safetensors, OpenRejectsFilesItCannotRead) {
  EXPECT_TRUE(throws_error([&] { safetensors::File::open(path_); }, ErrorCode::kInvalidArgument,
                           {"cannot open", path_}));
  EXPECT_TRUE(throws_error([&] { safetensors::File::open(fs::temp_directory_path().string()); },
                           ErrorCode::kInvalidArgument, {"not a regular file"}));
}

}  // namespace
}  // namespace fanin
