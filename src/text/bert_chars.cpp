#include "text/bert_chars.h"

#include <utf8proc.h>

#include <algorithm>
#include <memory>
#include <span>

#include "core/check.h"

namespace fanin::text::detail {
namespace {

struct CodeRange {
  char32_t lo, hi;  // inclusive
};
struct CodeMap {
  char32_t from, to;
};

#include "text/bert_compat_tables.inc"

// The "Chinese character" ranges of tokenizers' BertNormalizer. They differ
// from Google's original BERT in one place: 0x2B920 where BERT has 0x2B820,
// so U+2B820..U+2B91F are not split off in the reference either.
constexpr CodeRange kCjkRanges[] = {
    {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xF900, 0xFAFF},   {0x20000, 0x2A6DF},
    {0x2A700, 0x2B73F}, {0x2B740, 0x2B81F}, {0x2B920, 0x2CEAF}, {0x2F800, 0x2FA1F},
};

// Rust's char::is_whitespace (the White_Space property) outside ASCII, minus
// U+0085, which is a control character and so dropped by cleaning first.
constexpr CodeRange kSpaceRanges[] = {
    {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
    {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

bool in_ranges(std::span<const CodeRange> ranges, char32_t cp) {
  if (ranges.empty() || cp < ranges.front().lo || cp > ranges.back().hi) return false;
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                             [](char32_t v, const CodeRange& r) { return v < r.lo; });
  return it != ranges.begin() && cp <= std::prev(it)->hi;
}

bool is_ascii_punct(char32_t cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
         (cp >= 123 && cp <= 126);
}

int decompose_slow(char32_t cp, char32_t out[kMaxDecomposition]) {
  if (in_ranges(kNfdIdentity, cp)) {
    out[0] = cp;
    return 1;
  }
  utf8proc_int32_t buf[8];
  int last_boundclass = 0;
  utf8proc_ssize_t n = utf8proc_decompose_char(utf8proc_int32_t(cp), buf, 8, UTF8PROC_DECOMPOSE,
                                               &last_boundclass);
  FANIN_ASSERT(n >= 1 && n <= kMaxDecomposition, "NFD of U+", std::hex, uint32_t(cp), " has ",
               std::dec, n, " code points");
  for (utf8proc_ssize_t i = 0; i < n; ++i) out[i] = char32_t(buf[i]);
  return int(n);
}

char32_t lower_slow(char32_t cp) {
  const auto* end = std::end(kLowerOverride);
  auto it = std::lower_bound(std::begin(kLowerOverride), end, cp,
                             [](const CodeMap& m, char32_t v) { return m.from < v; });
  if (it != end && it->from == cp) return it->to;
  return char32_t(utf8proc_tolower(utf8proc_int32_t(cp)));
}

CharInfo compute(char32_t cp) {
  const utf8proc_property_t* prop = utf8proc_get_property(utf8proc_int32_t(cp));
  const auto cat = utf8proc_category_t(prop->category);
  uint8_t flags = 0;

  bool other = cp == 0 || cp == 0xFFFD || cat == UTF8PROC_CATEGORY_CC ||
               cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
               cat == UTF8PROC_CATEGORY_CS;
  if (cp == '\t' || cp == '\n' || cp == '\r') other = false;  // whitespace, not control
  if (other != in_ranges(kOtherFlip, cp)) flags |= kOther;

  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || in_ranges(kSpaceRanges, cp)) {
    flags |= kSpace;
  }
  if (in_ranges(kCjkRanges, cp)) flags |= kCjk;

  const bool mark = cat == UTF8PROC_CATEGORY_MN;
  if (mark != in_ranges(kMarkFlip, cp)) flags |= kMark;

  const bool punct = is_ascii_punct(cp) || cat == UTF8PROC_CATEGORY_PC ||
                     cat == UTF8PROC_CATEGORY_PD || cat == UTF8PROC_CATEGORY_PS ||
                     cat == UTF8PROC_CATEGORY_PE || cat == UTF8PROC_CATEGORY_PI ||
                     cat == UTF8PROC_CATEGORY_PF || cat == UTF8PROC_CATEGORY_PO;
  if (punct != in_ranges(kPunctFlip, cp)) flags |= kPunct;

  char32_t parts[kMaxDecomposition];
  if (decompose_slow(cp, parts) != 1 || parts[0] != cp) flags |= kDecomposes;
  if (lower_slow(cp) != cp) flags |= kLowerChanges;

  return CharInfo{flags, uint8_t(prop->combining_class)};
}

// Planes 0 and 1 (every script in common use, and the emoji) come from a
// table; rarer code points are classified on each use.
constexpr char32_t kTableSize = 0x20000;

const CharInfo* table() {
  static const std::unique_ptr<CharInfo[]> t = [] {
    auto p = std::make_unique<CharInfo[]>(kTableSize);
    for (char32_t cp = 0; cp < kTableSize; ++cp) {
      p[cp] = (cp >= 0xD800 && cp <= 0xDFFF) ? CharInfo{kOther, 0} : compute(cp);
    }
    return p;
  }();
  return t.get();
}

}  // namespace

CharInfo char_info(char32_t cp) {
  if (cp < kTableSize) return table()[cp];
  return compute(cp);
}

int decompose(char32_t cp, char32_t out[kMaxDecomposition]) {
  if (cp < kTableSize && !(table()[cp].flags & kDecomposes)) {
    out[0] = cp;
    return 1;
  }
  return decompose_slow(cp, out);
}

char32_t to_lower(char32_t cp) {
  if (cp < kTableSize && !(table()[cp].flags & kLowerChanges)) return cp;
  return lower_slow(cp);
}

}  // namespace fanin::text::detail
