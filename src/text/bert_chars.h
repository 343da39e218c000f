// Character classes of the BERT normalizer and pre-tokenizer, and strict
// UTF-8 decoding: the Unicode half of the WordPiece tokenizer.
//
// Classes follow utf8proc (Unicode 15), adjusted to match Hugging Face
// `tokenizers` exactly (bert_compat_tables.inc). All functions are pure and
// thread-safe; the lookup table behind char_info() is built once, on first
// use, under C++'s thread-safe static initialisation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fanin::text::detail {

enum CharFlag : uint8_t {
  kOther = 1 << 0,         // dropped by text cleaning (NUL, U+FFFD, Cc, Cf, Co)
  kSpace = 1 << 1,         // whitespace: a word boundary (checked after kOther)
  kCjk = 1 << 2,           // CJK ideograph: a word of its own
  kMark = 1 << 3,          // nonspacing mark: dropped after NFD
  kPunct = 1 << 4,         // punctuation: a word of its own
  kDecomposes = 1 << 5,    // NFD changes it
  kLowerChanges = 1 << 6,  // lowercasing changes it
};

struct CharInfo {
  uint8_t flags;
  uint8_t ccc;  // canonical combining class (0 for starters)
};

// The classes of `cp` (a Unicode scalar value).
CharInfo char_info(char32_t cp);

// The canonical decomposition (NFD, without reordering) of `cp` into `out`;
// returns the number of code points (1 when cp does not decompose).
constexpr int kMaxDecomposition = 4;
int decompose(char32_t cp, char32_t out[kMaxDecomposition]);

// The lowercase of `cp` (simple mapping).
char32_t to_lower(char32_t cp);

// Decodes one strict UTF-8 sequence (no overlongs, surrogates or values over
// U+10FFFF) at p[0..n), n >= 1. Returns its length (1-4) and sets *cp, or
// returns 0 when the bytes there are not valid UTF-8.
inline int decode_utf8(const uint8_t* p, size_t n, char32_t* cp) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return 0;
    *cp = (char32_t(b0 & 0x1F) << 6) | (p[1] & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (b0 == 0xED && p[1] > 0x9F) return 0;  // surrogate
    *cp = (char32_t(b0 & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (b0 == 0xF4 && p[1] > 0x8F) return 0;  // above U+10FFFF
    *cp = (char32_t(b0 & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
          (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    return 4;
  }
  return 0;
}

// Appends the UTF-8 encoding of `cp` to out; returns the byte count (1-4).
inline int encode_utf8(char32_t cp, char* out) {
  if (cp < 0x80) {
    out[0] = char(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = char(0xC0 | (cp >> 6));
    out[1] = char(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = char(0xE0 | (cp >> 12));
    out[1] = char(0x80 | ((cp >> 6) & 0x3F));
    out[2] = char(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = char(0xF0 | (cp >> 18));
  out[1] = char(0x80 | ((cp >> 12) & 0x3F));
  out[2] = char(0x80 | ((cp >> 6) & 0x3F));
  out[3] = char(0x80 | (cp & 0x3F));
  return 4;
}

}  // namespace fanin::text::detail
