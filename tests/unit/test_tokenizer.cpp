// The WordPiece tokenizer (text/wordpiece.h): rules on a tiny hand-written
// vocabulary (no download), then id-for-id parity with Hugging Face
// `tokenizers` on the committed corpus (tests/data/tokenizer_refs.json, made by
// scripts/make_tokenizer_refs.py) with the real vocabulary from
// scripts/fetch_models.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "test_helpers.h"
#include "text/wordpiece.h"

#ifndef FANIN_SOURCE_DIR
#error "FANIN_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

namespace fanin {
namespace {

using fanin::testing::throws_error;
using text::WordPiece;
using text::WordPieceOptions;
using Ids = std::vector<int32_t>;
namespace fs = std::filesystem;

// ---- the tiny vocabulary ----

enum : int32_t {
  kPad, kUnk, kCls, kSep, kMask,
  kUn, kAffCont, kAbleCont, kUnaff, kACont, kA, kComma, kPeriod, kBang,
  kHello, kWorld, kCafe, kZhong, kB, kLbracket,
};
const std::vector<std::string> kTiny = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "unaff", "##a",
    "a",     ",",     ".",     "!",     "hello",  "world", "cafe", "中",   "b",     "[",
};

WordPiece tiny(WordPieceOptions options = {}) { return WordPiece::from_tokens(kTiny, options); }

Ids ids(const WordPiece& wp, std::string_view text) { return wp.encode(text).ids; }

TEST(WordPiece, SpecialIdsAndLookups) {
  const WordPiece wp = tiny();
  EXPECT_EQ(wp.vocab_size(), int(kTiny.size()));
  EXPECT_EQ(wp.cls_id(), kCls);
  EXPECT_EQ(wp.sep_id(), kSep);
  EXPECT_EQ(wp.pad_id(), kPad);
  EXPECT_EQ(wp.unk_id(), kUnk);
  EXPECT_EQ(wp.mask_id(), kMask);
  EXPECT_EQ(wp.token_to_id("##able"), kAbleCont);
  EXPECT_EQ(wp.token_to_id("able"), std::nullopt);
  EXPECT_EQ(wp.id_to_token(kHello), "hello");
  EXPECT_TRUE(throws_error([&] { wp.id_to_token(int32_t(kTiny.size())); },
                           ErrorCode::kInvalidArgument, {"[wordpiece]", "20"}));
}

TEST(WordPiece, EmptyAndWhitespaceOnlyTextsAreJustClsSep) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, ""), (Ids{kCls, kSep}));
  EXPECT_EQ(ids(wp, " \t\r\n\u3000\u00a0"), (Ids{kCls, kSep}));
}

TEST(WordPiece, GreedyLongestMatchFirst) {
  const WordPiece wp = tiny();
  // "unaff" + "##able", not "un" + "##aff" + "##able".
  EXPECT_EQ(ids(wp, "unaffable"), (Ids{kCls, kUnaff, kAbleCont, kSep}));
  EXPECT_EQ(ids(wp, "unable"), (Ids{kCls, kUn, kAbleCont, kSep}));
}

TEST(WordPiece, ContinuationsUseTheDoubleHashPieces) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, "aaa"), (Ids{kCls, kA, kACont, kACont, kSep}));
  // "b" exists only word-initially, so "ab" cannot continue with it.
  EXPECT_EQ(ids(wp, "ab"), (Ids{kCls, kUnk, kSep}));
}

TEST(WordPiece, AWordWithAnUnmatchableRestIsOneUnk) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, "unx hello"), (Ids{kCls, kUnk, kHello, kSep}));
  EXPECT_EQ(ids(wp, "x"), (Ids{kCls, kUnk, kSep}));
}

TEST(WordPiece, WordsLongerThanTheLimitAreUnk) {
  WordPieceOptions o;
  o.max_length = 512;
  const WordPiece wp = tiny(o);
  Ids hundred{kCls, kA};
  hundred.insert(hundred.end(), 99, kACont);
  hundred.push_back(kSep);
  EXPECT_EQ(ids(wp, std::string(100, 'a')), hundred);
  EXPECT_EQ(ids(wp, std::string(101, 'a')), (Ids{kCls, kUnk, kSep}));
  // The limit counts code points after normalization: 100 "á" are 100 "a".
  std::string accented;
  for (int i = 0; i < 100; ++i) accented += "\u00e1";
  EXPECT_EQ(ids(wp, accented), hundred);
  EXPECT_EQ(ids(wp, accented + "a"), (Ids{kCls, kUnk, kSep}));

  o.max_word_chars = 3;
  const WordPiece short_words = tiny(o);
  EXPECT_EQ(ids(short_words, "aaa aaaa"), (Ids{kCls, kA, kACont, kACont, kUnk, kSep}));
}

TEST(WordPiece, LowercasesAndStripsAccents) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, "HeLLo WORLD"), (Ids{kCls, kHello, kWorld, kSep}));
  EXPECT_EQ(ids(wp, "CAF\u00c9"), (Ids{kCls, kCafe, kSep}));    // precomposed É
  EXPECT_EQ(ids(wp, "Cafe\u0301"), (Ids{kCls, kCafe, kSep}));   // e + combining acute
  EXPECT_EQ(ids(wp, "c\u0327afe"), (Ids{kCls, kCafe, kSep}));   // a stray cedilla
}

TEST(WordPiece, PunctuationIsItsOwnWord) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, "hello,world!"), (Ids{kCls, kHello, kComma, kWorld, kBang, kSep}));
  EXPECT_EQ(ids(wp, "..."), (Ids{kCls, kPeriod, kPeriod, kPeriod, kSep}));
  // Punctuation missing from the vocabulary is [UNK]; Unicode P* counts too.
  EXPECT_EQ(ids(wp, "hello?\u00bfworld"), (Ids{kCls, kHello, kUnk, kUnk, kWorld, kSep}));
}

TEST(WordPiece, CjkIdeographsAreSplitOff) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, "a\u4e2db"), (Ids{kCls, kA, kZhong, kB, kSep}));
  EXPECT_EQ(ids(wp, "\u4e2d\u4e2d"), (Ids{kCls, kZhong, kZhong, kSep}));
}

TEST(WordPiece, CleaningDropsControlsAndSplitsOnWhitespace) {
  const WordPiece wp = tiny();
  // Dropped characters do not split a word.
  EXPECT_EQ(ids(wp, std::string("hel\x01l\0o", 7)), (Ids{kCls, kHello, kSep}));
  EXPECT_EQ(ids(wp, "hel\u200blo\ufffd"), (Ids{kCls, kHello, kSep}));
  EXPECT_EQ(ids(wp, "hello\tworld\u2028hello"), (Ids{kCls, kHello, kWorld, kHello, kSep}));
}

TEST(WordPiece, SpecialTokensInTheText) {
  const WordPiece wp = tiny();
  EXPECT_EQ(ids(wp, "hello[MASK]world [SEP]"), (Ids{kCls, kHello, kMask, kWorld, kSep, kSep}));
  // Case-sensitive, and only whole tokens.
  EXPECT_EQ(ids(wp, "[mask]"), (Ids{kCls, kLbracket, kUnk, kUnk, kSep}));
  EXPECT_EQ(ids(wp, "[MASK"), (Ids{kCls, kLbracket, kUnk, kSep}));
  WordPieceOptions o;
  o.split_special_tokens = true;
  EXPECT_EQ(ids(tiny(o), "[MASK]"), (Ids{kCls, kLbracket, kUnk, kUnk, kSep}));
}

TEST(WordPiece, TruncatesToMaxLength) {
  WordPieceOptions o;
  o.max_length = 4;
  const WordPiece wp = tiny(o);
  const auto cut = wp.encode("hello world hello");
  EXPECT_EQ(cut.ids, (Ids{kCls, kHello, kWorld, kSep}));
  EXPECT_TRUE(cut.truncated);
  const auto fits = wp.encode("hello world   ");
  EXPECT_EQ(fits.ids, (Ids{kCls, kHello, kWorld, kSep}));
  EXPECT_FALSE(fits.truncated);
  // A word's pieces are cut like any tokens.
  EXPECT_EQ(ids(wp, "aaaa"), (Ids{kCls, kA, kACont, kSep}));
  o.max_length = 2;
  EXPECT_EQ(ids(tiny(o), "hello"), (Ids{kCls, kSep}));
  // The default is all-MiniLM-L6-v2's 256.
  EXPECT_EQ(ids(tiny(), std::string(1000, 'a') + " hello"), (Ids{kCls, kUnk, kHello, kSep}));
  std::string many;
  for (int i = 0; i < 600; ++i) many += "hello ";
  EXPECT_EQ(tiny().encode(many).ids.size(), 256u);
}

TEST(WordPiece, MaxLengthOutOfRangeIsRejected) {
  for (int bad : {513, 1, 0, -5}) {
    WordPieceOptions o;
    o.max_length = bad;
    EXPECT_TRUE(throws_error([&] { tiny(o); }, ErrorCode::kInvalidArgument,
                             {"[wordpiece]", "max_length " + std::to_string(bad), "2..512"}));
  }
  WordPieceOptions ok;
  ok.max_length = 512;
  EXPECT_EQ(tiny(ok).options().max_length, 512);
  WordPieceOptions bad_chars;
  bad_chars.max_word_chars = 0;
  EXPECT_TRUE(throws_error([&] { tiny(bad_chars); }, ErrorCode::kInvalidArgument,
                           {"max_word_chars 0"}));
}

TEST(WordPiece, BatchPadsToTheLongestWithAMask) {
  const WordPiece wp = tiny();
  const std::vector<std::string> texts = {"hello", "hello world a", ""};
  const auto b = wp.encode_batch(texts);
  EXPECT_EQ(b.batch, 3u);
  EXPECT_EQ(b.seq_len, 5u);
  EXPECT_EQ(b.ids, (Ids{kCls, kHello, kSep, kPad, kPad,  //
                        kCls, kHello, kWorld, kA, kSep,  //
                        kCls, kSep, kPad, kPad, kPad}));
  EXPECT_EQ(b.attention_mask, (Ids{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(b.lengths, (Ids{3, 5, 2}));
  EXPECT_EQ(b.truncated, (std::vector<uint8_t>{0, 0, 0}));

  const auto empty = wp.encode_batch(std::vector<std::string>{});
  EXPECT_EQ(empty.batch, 0u);
  EXPECT_EQ(empty.seq_len, 0u);
  EXPECT_TRUE(empty.ids.empty());
}

TEST(WordPiece, InvalidUtf8NamesTheByteOffset) {
  const WordPiece wp = tiny();
  struct Case {
    std::string text;
    std::string offset;
  };
  const std::vector<Case> cases = {
      {"ab\xC3", "offset 2"},                 // cut short
      {"hello \xFF world", "offset 6"},       // never valid
      {"\x80", "offset 0"},                   // stray continuation byte
      {"x\xC0\xAF", "offset 1"},              // overlong "/"
      {"xy\xE0\x80\xAF", "offset 2"},         // overlong, 3 bytes
      {"\xED\xA0\x80", "offset 0"},           // UTF-16 surrogate
      {"abc\xF4\x90\x80\x80", "offset 3"},    // above U+10FFFF
      {"\u00e9\xE2\x82", "offset 2"},         // cut short after a valid é
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(throws_error([&] { wp.encode(c.text); }, ErrorCode::kInvalidArgument,
                             {"[wordpiece]", "invalid UTF-8", c.offset}));
  }
  // Bytes past the truncation point are still checked.
  WordPieceOptions o;
  o.max_length = 3;
  EXPECT_TRUE(throws_error([&] { tiny(o).encode("hello world \xFF"); },
                           ErrorCode::kInvalidArgument, {"offset 12"}));
  // A batch names the text.
  const std::vector<std::string> batch = {"hello", "wor\xFFld"};
  EXPECT_TRUE(throws_error([&] { wp.encode_batch(batch); }, ErrorCode::kInvalidArgument,
                           {"text 1", "offset 3"}));
  // And the tokenizer still works afterwards on this thread.
  EXPECT_EQ(ids(wp, "hello"), (Ids{kCls, kHello, kSep}));
}

TEST(WordPiece, BadVocabularies) {
  EXPECT_TRUE(throws_error([] { WordPiece::from_tokens({"[CLS]", "[SEP]", "[PAD]"}); },
                           ErrorCode::kInvalidArgument, {"[wordpiece]", "no [UNK]"}));
  EXPECT_TRUE(throws_error([] { WordPiece::from_tokens({}); }, ErrorCode::kInvalidArgument,
                           {"empty"}));
  EXPECT_TRUE(throws_error([] { WordPiece::from_vocab_file("/nonexistent/vocab.txt"); },
                           ErrorCode::kInvalidArgument, {"/nonexistent/vocab.txt"}));
}

TEST(WordPiece, RepeatedTokensAndManyContinuations) {
  // A repeated token takes its last line's id, as in the reference.
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "x", "x"};
  EXPECT_EQ(ids(WordPiece::from_tokens(tokens), "x"), (Ids{2, 5, 3}));
  // Continuations are two keys each; lookups that miss must still end.
  for (int i = 0; i < 5000; ++i) tokens.push_back("##c" + std::to_string(i));
  const WordPiece wp = WordPiece::from_tokens(tokens);
  EXPECT_EQ(ids(wp, "xc42 xc4999 xq"), (Ids{2, 5, 6 + 42, 5, 6 + 4999, 1, 3}));
}

TEST(WordPiece, ReadsVocabularyFilesWithCrlfLineEnds) {
  const fs::path path = fs::temp_directory_path() / ("fanin_vocab_" + std::to_string(getpid()));
  {
    std::ofstream out(path, std::ios::binary);
    for (const auto& t : kTiny) out << t << "\r\n";
  }
  const WordPiece wp = WordPiece::from_vocab_file(path.string());
  fs::remove(path);
  EXPECT_EQ(wp.vocab_size(), int(kTiny.size()));
  EXPECT_EQ(ids(wp, "Hello, world!"), (Ids{kCls, kHello, kComma, kWorld, kBang, kSep}));
}

TEST(WordPiece, ManyThreadsShareOneTokenizer) {
  const WordPiece wp = tiny();
  const std::vector<std::string> texts = {"unaffable hello", "CAF\u00c9, world!", "a\u4e2db",
                                          "[MASK] aaa", std::string(101, 'a')};
  std::vector<Ids> want;
  for (const auto& t : texts) want.push_back(ids(wp, t));
  std::vector<std::thread> threads;
  std::vector<int> wrong(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const WordPiece copy = wp;  // copies share the vocabulary
      for (int i = 0; i < 2000; ++i) {
        const size_t k = size_t(i + t) % texts.size();
        if (copy.encode(texts[k]).ids != want[k]) ++wrong[size_t(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(wrong[size_t(t)], 0) << "thread " << t;
}

// ---- parity with Hugging Face tokenizers on the real vocabulary ----

class WordPieceParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path src = FANIN_SOURCE_DIR;
    vocab_ = src / "models" / "all-MiniLM-L6-v2" / "vocab.txt";
    if (!fs::exists(vocab_)) {
      GTEST_SKIP() << vocab_.string() << " is missing: run scripts/fetch_models.sh";
    }
    std::ifstream in(src / "tests" / "data" / "tokenizer_refs.json");
    ASSERT_TRUE(in.good()) << "cannot read tests/data/tokenizer_refs.json";
    refs_ = nlohmann::json::parse(in);
    ASSERT_FALSE(refs_["cases"].empty());
  }

  WordPiece load(int max_length) const {
    WordPieceOptions o;
    o.max_length = max_length;
    return WordPiece::from_vocab_file(vocab_.string(), o);
  }

  fs::path vocab_;
  nlohmann::json refs_;
};

TEST_F(WordPieceParity, EveryCorpusLineAtEveryLength) {
  std::vector<int> lengths = {refs_["max_length"].get<int>()};
  for (const auto& n : refs_["truncation_lengths"]) lengths.push_back(n.get<int>());
  size_t checked = 0;
  for (int n : lengths) {
    const WordPiece wp = load(n);
    EXPECT_EQ(wp.vocab_size(), 30522);
    for (const auto& c : refs_["cases"]) {
      const std::string text = c["text"];
      const std::string key = std::to_string(n);
      const auto& want_json = (c.contains("truncated") && c["truncated"].contains(key))
                                  ? c["truncated"][key]
                                  : c["ids"];
      const Ids want = want_json.get<Ids>();
      EXPECT_EQ(wp.encode(text).ids, want)
          << "corpus line " << c["line"] << " at max_length " << n << ": " << c["text"].dump();
      ++checked;
    }
  }
  EXPECT_EQ(checked, lengths.size() * refs_["cases"].size());
}

TEST_F(WordPieceParity, BatchOfTheWholeCorpus) {
  const WordPiece wp = load(256);
  std::vector<std::string> texts;
  std::vector<Ids> want;
  size_t longest = 0;
  for (const auto& c : refs_["cases"]) {
    texts.push_back(c["text"]);
    const auto& w = (c.contains("truncated") && c["truncated"].contains("256"))
                        ? c["truncated"]["256"]
                        : c["ids"];
    want.push_back(w.get<Ids>());
    longest = std::max(longest, want.back().size());
  }
  const auto b = wp.encode_batch(texts);
  ASSERT_EQ(b.batch, texts.size());
  ASSERT_EQ(b.seq_len, longest);
  for (size_t r = 0; r < texts.size(); ++r) {
    Ids row(b.ids.begin() + long(r * b.seq_len), b.ids.begin() + long((r + 1) * b.seq_len));
    Ids mask(b.attention_mask.begin() + long(r * b.seq_len),
             b.attention_mask.begin() + long((r + 1) * b.seq_len));
    Ids padded = want[r];
    padded.resize(longest, wp.pad_id());
    Ids want_mask(longest, 0);
    std::fill_n(want_mask.begin(), want[r].size(), 1);
    EXPECT_EQ(row, padded) << "row " << r;
    EXPECT_EQ(mask, want_mask) << "row " << r;
    EXPECT_EQ(size_t(b.lengths[r]), want[r].size()) << "row " << r;
  }
}

}  // namespace
}  // namespace fanin
