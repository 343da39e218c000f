#include "text/wordpiece.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/check.h"
#include "text/bert_chars.h"

namespace fanin::text {

using detail::CharInfo;

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// Seeds keep word-initial pieces and "##" continuations apart in one table.
constexpr uint64_t kInitialSeed = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kContinuationSeed = 0xD6E8FEB86659FD93ull;

uint64_t hash_bytes(const char* p, size_t n, uint64_t seed) {
  uint64_t h = seed ^ n;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = mix(h ^ v);
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(p[i])) << (8 * i);
  return mix(h ^ v);
}

bool is_continuation_byte(char c) { return (uint8_t(c) & 0xC0) == 0x80; }

// What an ASCII byte does, decided once (the hot path never asks utf8proc).
enum class Ascii : uint8_t { kDrop, kSpace, kPunct, kWord };

struct AsciiTable {
  Ascii kind[128];
  char lower[128];
  constexpr AsciiTable() : kind(), lower() {
    for (int c = 0; c < 128; ++c) {
      lower[c] = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : char(c);
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') kind[c] = Ascii::kSpace;
      else if (c < 32 || c == 127) kind[c] = Ascii::kDrop;
      else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126))
        kind[c] = Ascii::kPunct;
      else kind[c] = Ascii::kWord;
    }
  }
};
constexpr AsciiTable kAscii;

// Per-thread working memory, so encode() allocates nothing once warm.
struct Scratch {
  std::string word;              // the current word, normalized UTF-8
  size_t word_chars = 0;         // its length in code points
  std::vector<char32_t> marks;   // non-starters awaiting canonical reordering
  std::vector<int32_t> pieces;   // the current word's pieces
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Where ids go: stops taking pieces when the sequence is full.
struct Sink {
  std::vector<int32_t>& ids;
  size_t limit;  // max ids before [SEP]
  bool full = false;
  bool push(int32_t id) {
    if (ids.size() >= limit) {
      full = true;
      return false;
    }
    ids.push_back(id);
    return true;
  }
};

}  // namespace

struct WordPiece::Impl {
  struct Slot {            // 16 bytes: four to a cache line
    uint32_t tag = 0;      // the hash's high half (the low bits pick the slot)
    uint32_t offset = 0;   // key bytes in arena
    uint32_t length = 0;
    int32_t id = -1;       // -1: empty slot
  };
  struct Special {
    std::string text;
    int32_t id;
  };

  WordPieceOptions options;
  std::string arena;                 // every token's bytes, back to back
  std::vector<uint32_t> token_offset;  // id -> token in arena
  std::vector<uint32_t> token_length;
  std::vector<Slot> slots;           // open addressing, linear probing
  uint64_t slot_mask = 0;
  size_t max_piece_bytes[2] = {0, 0};  // [initial, continuation]: longest key
  int32_t ascii_id[128];             // single ASCII byte as a word-initial piece, or -1
  int32_t cls = -1, sep = -1, pad = -1, unk = -1, mask = -1;
  std::vector<Special> specials;     // matched in the raw text

  std::string_view token(int32_t id) const {
    return std::string_view(arena).substr(token_offset[size_t(id)], token_length[size_t(id)]);
  }

  // The id of `key` (without "##" for a continuation), or -1.
  int32_t find(const char* p, size_t n, bool continuation) const {
    const uint64_t h = hash_bytes(p, n, continuation ? kContinuationSeed : kInitialSeed);
    const auto tag = uint32_t(h >> 32);
    for (uint64_t i = h & slot_mask;; i = (i + 1) & slot_mask) {
      const Slot& s = slots[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && s.length == n && std::memcmp(arena.data() + s.offset, p, n) == 0) {
        return s.id;
      }
    }
  }

  void insert(uint32_t offset, uint32_t length, int32_t id, bool continuation) {
    const uint64_t h =
        hash_bytes(arena.data() + offset, length, continuation ? kContinuationSeed : kInitialSeed);
    const auto tag = uint32_t(h >> 32);
    for (uint64_t i = h & slot_mask;; i = (i + 1) & slot_mask) {
      Slot& s = slots[i];
      if (s.id < 0) {
        s = Slot{tag, offset, length, id};
        break;
      }
      if (s.tag == tag && s.length == length &&
          std::memcmp(arena.data() + s.offset, arena.data() + offset, length) == 0) {
        s.id = id;  // a repeated token: the later line wins, as in the reference
        break;
      }
    }
    size_t& longest = max_piece_bytes[continuation ? 1 : 0];
    longest = std::max<size_t>(longest, length);
  }

  void tokenize(std::string_view text, Sink& sink, long row) const;
  void end_word(Scratch& s, Sink& sink) const;
  void flush_marks(Scratch& s, Sink& sink) const;
  void add_normalized(char32_t cp, Scratch& s, Sink& sink) const;
  [[noreturn]] void bad_utf8(std::string_view text, size_t offset, long row) const;
};

namespace {

void check_options(const WordPieceOptions& o, const std::string& what) {
  FANIN_CHECK(o.max_length >= 2 && o.max_length <= kMaxSequenceLength, kInvalidArgument,
              "[wordpiece] max_length ", o.max_length, " for ", what,
              " is out of range: it must be in 2..", kMaxSequenceLength,
              " ([CLS] and [SEP] included)");
  FANIN_CHECK(o.max_word_chars >= 1, kInvalidArgument, "[wordpiece] max_word_chars ",
              o.max_word_chars, " for ", what, " must be >= 1");
}

}  // namespace

WordPiece WordPiece::from_vocab_file(const std::string& path, WordPieceOptions options) {
  std::ifstream in(path, std::ios::binary);
  FANIN_CHECK(in.good(), kInvalidArgument, "[wordpiece] cannot open vocabulary file '", path,
              "': ", std::strerror(errno));
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) tokens.push_back(std::move(line));
  FANIN_CHECK(!in.bad(), kInvalidArgument, "[wordpiece] error reading vocabulary file '", path,
              "'");
  return from_tokens(tokens, options, "vocabulary file '" + path + "'");
}

WordPiece WordPiece::from_tokens(const std::vector<std::string>& tokens, WordPieceOptions options,
                                 const std::string& what) {
  check_options(options, what);
  FANIN_CHECK(!tokens.empty(), kInvalidArgument, "[wordpiece] ", what, " is empty");
  FANIN_CHECK(tokens.size() <= size_t(std::numeric_limits<int32_t>::max()), kInvalidArgument,
              "[wordpiece] ", what, " has ", tokens.size(),
              " tokens; at most 2^31-1 are supported");
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  size_t total = 0;
  for (const auto& t : tokens) total += t.size();
  FANIN_CHECK(total < (size_t(1) << 32), kInvalidArgument, "[wordpiece] ", what, " holds ", total,
              " bytes of tokens; at most 4 GiB are supported");
  impl->arena.reserve(total);
  impl->token_offset.reserve(tokens.size());
  impl->token_length.reserve(tokens.size());

  for (size_t id = 0; id < tokens.size(); ++id) {
    std::string_view t = tokens[id];
    // Trailing whitespace (a "\r" of CRLF files included) is not part of a token.
    while (!t.empty() && (t.back() == '\r' || t.back() == ' ' || t.back() == '\t' ||
                          t.back() == '\v' || t.back() == '\f')) {
      t.remove_suffix(1);
    }
    const auto offset = uint32_t(impl->arena.size());
    impl->arena.append(t);
    impl->token_offset.push_back(offset);
    impl->token_length.push_back(uint32_t(t.size()));
  }
  // A key per token, and a second one (without "##") per continuation; the
  // table is kept at most 70% full.
  size_t keys = 0;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const uint32_t length = impl->token_length[id];
    keys += (length > 0) +
            (length > 2 && impl->arena.compare(impl->token_offset[id], 2, "##") == 0);
  }
  size_t capacity = 16;
  while (capacity * 7 < keys * 10) capacity *= 2;
  impl->slots.assign(capacity, Impl::Slot{});
  impl->slot_mask = capacity - 1;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const uint32_t offset = impl->token_offset[id];
    const uint32_t length = impl->token_length[id];
    if (length == 0) continue;  // an empty line: an id no text can produce
    impl->insert(offset, length, int32_t(id), false);
    if (length > 2 && impl->arena.compare(offset, 2, "##") == 0) {
      impl->insert(offset + 2, length - 2, int32_t(id), true);
    }
  }
  for (int c = 0; c < 128; ++c) {
    const char ch = char(c);
    impl->ascii_id[c] = impl->find(&ch, 1, false);
  }

  auto special = [&](const char* name, bool required) {
    const int32_t id = impl->find(name, std::strlen(name), false);
    FANIN_CHECK(id >= 0 || !required, kInvalidArgument, "[wordpiece] ", what, " has no ", name,
                " token");
    if (id >= 0) impl->specials.push_back({name, id});
    return id;
  };
  impl->cls = special("[CLS]", true);
  impl->sep = special("[SEP]", true);
  impl->pad = special("[PAD]", true);
  impl->unk = special("[UNK]", true);
  impl->mask = special("[MASK]", false);
  return WordPiece(std::move(impl));
}

// Note [Streaming normalization]: the reference normalizes the whole text,
// then splits it. fanin does both in one pass over the bytes, appending
// normalized code points to the current word and ending words at
// whitespace, punctuation and CJK ideographs. Canonical reordering (part of
// NFD) only permutes runs of non-starters (combining class != 0), so those are
// held back in Scratch::marks until the next starter, sorted stably by class,
// and only then added. Non-starters that accent stripping drops are dropped
// at once: a stable sort keeps the others in the same relative order with or
// without them. (Marks of class 0 are starters: they end a run first.)

void WordPiece::Impl::end_word(Scratch& s, Sink& sink) const {
  if (s.word.empty()) return;
  const std::string& w = s.word;
  if (s.word_chars > size_t(options.max_word_chars)) {
    sink.push(unk);
  } else {
    // Greedy longest match, as the reference: from each start, the longest
    // vocabulary piece; a rest that matches nothing makes the word [UNK].
    s.pieces.clear();
    size_t start = 0;
    bool ok = true;
    while (start < w.size()) {
      const bool cont = start > 0;
      size_t end = std::min(w.size(), start + max_piece_bytes[cont ? 1 : 0]);
      while (end < w.size() && is_continuation_byte(w[end])) --end;
      int32_t id = -1;
      while (end > start) {
        id = find(w.data() + start, end - start, cont);
        if (id >= 0) break;
        do {
          --end;
        } while (end > start && is_continuation_byte(w[end]));
      }
      if (id < 0) {
        ok = false;
        break;
      }
      s.pieces.push_back(id);
      start = end;
    }
    if (!ok) {
      sink.push(unk);
    } else {
      for (int32_t id : s.pieces) {
        if (!sink.push(id)) break;
      }
    }
  }
  s.word.clear();
  s.word_chars = 0;
}

// A code point after NFD and reordering: strip marks, lowercase, split.
void WordPiece::Impl::add_normalized(char32_t cp, Scratch& s, Sink& sink) const {
  CharInfo info = detail::char_info(cp);
  if (info.flags & detail::kMark) return;
  if (info.flags & detail::kLowerChanges) {
    cp = detail::to_lower(cp);
    info = detail::char_info(cp);
  }
  if (info.flags & detail::kSpace) {  // not produced by NFD or lowercasing, kept for safety
    end_word(s, sink);
    return;
  }
  char buf[4];
  const int n = detail::encode_utf8(cp, buf);
  if (info.flags & detail::kPunct) {
    end_word(s, sink);
    s.word.assign(buf, size_t(n));
    s.word_chars = 1;
    end_word(s, sink);
    return;
  }
  s.word.append(buf, size_t(n));
  ++s.word_chars;
}

void WordPiece::Impl::flush_marks(Scratch& s, Sink& sink) const {
  if (s.marks.empty()) return;
  if (s.marks.size() > 1) {
    std::stable_sort(s.marks.begin(), s.marks.end(), [](char32_t a, char32_t b) {
      return detail::char_info(a).ccc < detail::char_info(b).ccc;
    });
  }
  for (char32_t m : s.marks) add_normalized(m, s, sink);
  s.marks.clear();
}

void WordPiece::Impl::bad_utf8(std::string_view text, size_t offset, long row) const {
  std::ostringstream bytes;
  const size_t end = std::min(text.size(), offset + 4);
  for (size_t i = offset; i < end; ++i) {
    bytes << (i > offset ? " " : "") << "0x" << std::hex << std::uppercase
          << unsigned(uint8_t(text[i]));
  }
  if (row >= 0) {
    FANIN_THROW(kInvalidArgument, "[wordpiece] text ", row, ": invalid UTF-8 at byte offset ",
                offset, " (bytes ", bytes.str(), ")");
  }
  FANIN_THROW(kInvalidArgument, "[wordpiece] invalid UTF-8 at byte offset ", offset, " (bytes ",
              bytes.str(), ")");
}

void WordPiece::Impl::tokenize(std::string_view text, Sink& sink, long row) const {
  Scratch& s = scratch();
  s.word.clear();
  s.word_chars = 0;
  s.marks.clear();
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  const bool match_specials = !options.split_special_tokens;
  size_t i = 0;
  while (i < n && !sink.full) {
    const uint8_t b = p[i];
    if (b < 0x80) {
      const Ascii kind = kAscii.kind[b];
      if (kind == Ascii::kDrop) {  // removed before NFD: does not end a run of marks
        ++i;
        continue;
      }
      flush_marks(s, sink);
      if (kind == Ascii::kWord) {
        s.word.push_back(kAscii.lower[b]);
        ++s.word_chars;
        ++i;
        continue;
      }
      end_word(s, sink);
      if (kind == Ascii::kPunct) {
        if (b == '[' && match_specials) {
          const Special* hit = nullptr;
          for (const Special& sp : specials) {
            if (text.compare(i, sp.text.size(), sp.text) == 0) {
              hit = &sp;
              break;
            }
          }
          if (hit != nullptr) {
            sink.push(hit->id);
            i += hit->text.size();
            continue;
          }
        }
        const int32_t id = ascii_id[b];
        sink.push(id >= 0 ? id : unk);
      }
      ++i;
      continue;
    }

    char32_t cp;
    const int len = detail::decode_utf8(p + i, n - i, &cp);
    if (len == 0) bad_utf8(text, i, row);
    i += size_t(len);
    const CharInfo info = detail::char_info(cp);
    if (info.flags & detail::kOther) continue;
    if (info.flags & detail::kSpace) {
      flush_marks(s, sink);
      end_word(s, sink);
      continue;
    }
    char32_t parts[detail::kMaxDecomposition] = {cp};
    const int count = (info.flags & detail::kDecomposes) ? detail::decompose(cp, parts) : 1;
    if (info.flags & detail::kCjk) {  // its own word (its NFD is a single starter)
      flush_marks(s, sink);
      end_word(s, sink);
      for (int k = 0; k < count; ++k) add_normalized(parts[k], s, sink);
      end_word(s, sink);
      continue;
    }
    for (int k = 0; k < count; ++k) {
      const CharInfo part = detail::char_info(parts[k]);
      if (part.ccc != 0) {
        if (!(part.flags & detail::kMark)) s.marks.push_back(parts[k]);
      } else {
        flush_marks(s, sink);
        add_normalized(parts[k], s, sink);
      }
    }
  }
  if (!sink.full) {
    flush_marks(s, sink);
    end_word(s, sink);
  }
  if (sink.full) {
    // The rest is not tokenized, but bad input is bad input wherever it is.
    while (i < n) {
      if (p[i] < 0x80) {
        ++i;
        continue;
      }
      char32_t cp;
      const int len = detail::decode_utf8(p + i, n - i, &cp);
      if (len == 0) bad_utf8(text, i, row);
      i += size_t(len);
    }
  }
}

bool WordPiece::encode_into(std::string_view text, std::vector<int32_t>& ids) const {
  const Impl& im = *impl_;
  ids.clear();
  ids.reserve(std::min<size_t>(size_t(im.options.max_length), text.size() + 2));
  ids.push_back(im.cls);
  Sink sink{ids, size_t(im.options.max_length) - 1};
  im.tokenize(text, sink, -1);
  ids.push_back(im.sep);
  return sink.full;
}

Encoding WordPiece::encode(std::string_view text) const {
  Encoding e;
  e.truncated = encode_into(text, e.ids);
  return e;
}

BatchEncoding WordPiece::encode_batch(std::span<const std::string_view> texts) const {
  const Impl& im = *impl_;
  BatchEncoding out;
  out.batch = texts.size();
  out.lengths.resize(texts.size());
  out.truncated.resize(texts.size());
  // Rows are encoded back to back into `flat`, then laid out padded.
  std::vector<int32_t> flat;
  std::vector<int32_t> row_ids;
  flat.reserve(texts.size() * 32);
  for (size_t r = 0; r < texts.size(); ++r) {
    row_ids.clear();
    row_ids.push_back(im.cls);
    Sink sink{row_ids, size_t(im.options.max_length) - 1};
    im.tokenize(texts[r], sink, long(r));
    row_ids.push_back(im.sep);
    out.lengths[r] = int32_t(row_ids.size());
    out.truncated[r] = sink.full ? 1 : 0;
    out.seq_len = std::max(out.seq_len, row_ids.size());
    flat.insert(flat.end(), row_ids.begin(), row_ids.end());
  }
  out.ids.assign(out.batch * out.seq_len, im.pad);
  out.attention_mask.assign(out.batch * out.seq_len, 0);
  size_t at = 0;
  for (size_t r = 0; r < texts.size(); ++r) {
    const size_t len = size_t(out.lengths[r]);
    std::copy_n(flat.begin() + long(at), len, out.ids.begin() + long(r * out.seq_len));
    std::fill_n(out.attention_mask.begin() + long(r * out.seq_len), len, 1);
    at += len;
  }
  return out;
}

BatchEncoding WordPiece::encode_batch(std::span<const std::string> texts) const {
  std::vector<std::string_view> views(texts.begin(), texts.end());
  return encode_batch(std::span<const std::string_view>(views));
}

std::optional<int32_t> WordPiece::token_to_id(std::string_view token) const {
  const Impl& im = *impl_;
  if (token.empty()) return std::nullopt;
  const int32_t id = im.find(token.data(), token.size(), false);
  if (id < 0) return std::nullopt;
  return id;
}

std::string_view WordPiece::id_to_token(int32_t id) const {
  FANIN_CHECK(id >= 0 && id < vocab_size(), kInvalidArgument, "[wordpiece] token id ", id,
              " is out of range for a vocabulary of ", vocab_size());
  return impl_->token(id);
}

int WordPiece::vocab_size() const { return int(impl_->token_offset.size()); }
const WordPieceOptions& WordPiece::options() const { return impl_->options; }
int32_t WordPiece::cls_id() const { return impl_->cls; }
int32_t WordPiece::sep_id() const { return impl_->sep; }
int32_t WordPiece::pad_id() const { return impl_->pad; }
int32_t WordPiece::unk_id() const { return impl_->unk; }
int32_t WordPiece::mask_id() const { return impl_->mask; }

}  // namespace fanin::text
