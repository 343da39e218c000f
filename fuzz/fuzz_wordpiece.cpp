// libFuzzer target: random bytes -> WordPiece::encode / encode_batch.
// Must never crash; the only exception allowed is fanin::Error with
// InvalidArgument, and exactly when the bytes are not valid UTF-8 (checked
// against an independent validator). Checks the output's shape too.
// The vocabulary is a small built-in one, or the file named by
// FANIN_FUZZ_VOCAB (fuzz/run.sh passes the real one when it is fetched).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fanin/error.h"
#include "text/wordpiece.h"

namespace {

using fanin::text::WordPiece;
using fanin::text::WordPieceOptions;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_wordpiece: %s\n", what);
  std::abort();
}

// RFC 3629, written apart from the tokenizer's decoder on purpose.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b <= 0x7F) len = 1;
    else if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b == 0xE0) { len = 3; lo = 0xA0; }
    else if (b == 0xED) { len = 3; hi = 0x9F; }
    else if (b >= 0xE1 && b <= 0xEF) len = 3;
    else if (b == 0xF0) { len = 4; lo = 0x90; }
    else if (b >= 0xF1 && b <= 0xF3) len = 4;
    else if (b == 0xF4) { len = 4; hi = 0x8F; }
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (c < l || c > h) return false;
    }
    i += len;
  }
  return true;
}

WordPiece make(const WordPieceOptions& o) {
  if (const char* path = std::getenv("FANIN_FUZZ_VOCAB"); path != nullptr && *path != '\0') {
    return WordPiece::from_vocab_file(path, o);
  }
  return WordPiece::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "ab",
                                 "##b", "un", "##able", "e", "##e", "\xe4\xb8\xad", "##\xc3\xa9",
                                 ",", ".", "!", "[", "]", "#", "##"},
                                o);
}

// Four tokenizers: default, short sequences, short words, special tokens split.
const std::vector<WordPiece>& tokenizers() {
  static const std::vector<WordPiece> all = [] {
    std::vector<WordPiece> v;
    WordPieceOptions o;
    v.push_back(make(o));
    o.max_length = 5;
    v.push_back(make(o));
    o = {};
    o.max_word_chars = 3;
    o.max_length = 512;
    v.push_back(make(o));
    o = {};
    o.split_special_tokens = true;
    v.push_back(make(o));
    return v;
  }();
  return all;
}

void check_encoding(const WordPiece& wp, const std::vector<int32_t>& ids) {
  if (ids.size() < 2 || ids.size() > size_t(wp.options().max_length)) fail("length out of range");
  if (ids.front() != wp.cls_id() || ids.back() != wp.sep_id()) fail("missing [CLS]/[SEP]");
  for (int32_t id : ids) {
    if (id < 0 || id >= wp.vocab_size()) fail("id out of range");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& all = tokenizers();
  const WordPiece& wp = all[data[0] % all.size()];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const bool valid = valid_utf8(text);
  try {
    const auto e = wp.encode(text);
    if (!valid) fail("invalid UTF-8 accepted");
    check_encoding(wp, e.ids);
    // A batch of the text's halves must equal the halves encoded alone
    // (split at a character boundary so both stay valid).
    size_t cut = text.size() / 2;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    const std::vector<std::string_view> halves = {text.substr(0, cut), text.substr(cut)};
    const auto b = wp.encode_batch(halves);
    for (size_t r = 0; r < 2; ++r) {
      const auto one = wp.encode(halves[r]).ids;
      check_encoding(wp, one);
      if (size_t(b.lengths[r]) != one.size()) fail("batch length differs from encode");
      for (size_t k = 0; k < b.seq_len; ++k) {
        const int32_t want = k < one.size() ? one[k] : wp.pad_id();
        if (b.ids[r * b.seq_len + k] != want) fail("batch ids differ from encode");
        if (b.attention_mask[r * b.seq_len + k] != (k < one.size() ? 1 : 0)) fail("bad mask");
      }
    }
  } catch (const fanin::Error& e) {
    if (e.code() != fanin::ErrorCode::kInvalidArgument) fail("unexpected error code");
    if (valid) {
      std::fprintf(stderr, "%s\n", e.what());
      fail("valid UTF-8 rejected");
    }
  }
  return 0;
}
