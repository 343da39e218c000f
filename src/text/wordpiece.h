// BERT-uncased WordPiece tokenizer, token-for-token identical to Hugging Face
// `tokenizers` (BertNormalizer + BertPreTokenizer + WordPiece + the [CLS] ...
// [SEP] template) for models such as all-MiniLM-L6-v2.
//
// Contract: a WordPiece is immutable once made. Every const method is
// thread-safe and may run on many threads at once; copies share the
// vocabulary. Bad input (invalid UTF-8, out-of-range options, an unreadable or
// incomplete vocabulary) raises fanin::Error{InvalidArgument}; no input makes
// the tokenizer crash or abort.
//
// Note [WordPiece pipeline] (what encode() does, in the reference's order):
//  1. Special tokens written in the text ("[CLS]", "[SEP]", "[PAD]", "[UNK]",
//     "[MASK]"; case-sensitive) become their ids, as `tokenizers` does for
//     the model's added tokens, unless Options::split_special_tokens.
//  2. Cleaning: NUL, U+FFFD and "other" characters (Cc, Cf, Co) are dropped;
//     whitespace becomes a word boundary.
//  3. CJK ideographs become words of their own.
//  4. NFD (with canonical reordering), nonspacing marks (Mn) dropped, then
//     lowercased.
//  5. Punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*) becomes
//     a word of its own.
//  6. Each word: more than Options::max_word_chars code points -> [UNK];
//     else greedy longest-match pieces, "##" marking continuations; a word
//     with an unmatchable rest is a single [UNK].
//  7. [CLS] + pieces + [SEP], the pieces cut to max_length - 2.
// Unicode data comes from utf8proc; where `tokenizers` follows older Unicode
// tables, src/text/bert_compat_tables.inc (generated) records the difference.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fanin::text {

// The largest max_length accepted: BERT's position table has 512 rows.
constexpr int kMaxSequenceLength = 512;

struct WordPieceOptions {
  // Tokens per sequence, [CLS] and [SEP] included; longer inputs are cut.
  // 2..kMaxSequenceLength. all-MiniLM-L6-v2 uses 256.
  int max_length = 256;
  // Words longer than this many code points (after normalization) become [UNK].
  int max_word_chars = 100;
  // true: "[CLS]" and the other special tokens in the text are tokenized as
  // plain text ("[", "cl", "##s", "]"). false (the reference's default): they
  // become the special tokens' ids.
  bool split_special_tokens = false;
};

// One encoded sequence: [CLS], the pieces, [SEP].
struct Encoding {
  std::vector<int32_t> ids;
  bool truncated = false;  // true when pieces were cut to fit max_length
};

// A batch padded to its longest row.
struct BatchEncoding {
  size_t batch = 0;    // rows
  size_t seq_len = 0;  // columns: the longest row's length
  std::vector<int32_t> ids;             // batch * seq_len, row-major, padded with pad_id()
  std::vector<int32_t> attention_mask;  // batch * seq_len: 1 for tokens, 0 for padding
  std::vector<int32_t> lengths;         // tokens per row, [CLS] and [SEP] included
  std::vector<uint8_t> truncated;       // per row: 1 when the row was cut
};

class WordPiece {
 public:
  // Reads a vocabulary file: one token per line, the line number (from 0) is
  // the id; trailing whitespace on a line is ignored. Requires [CLS], [SEP],
  // [PAD] and [UNK]. Throws InvalidArgument naming the file otherwise.
  static WordPiece from_vocab_file(const std::string& path, WordPieceOptions options = {});
  // The same from tokens in id order (tests, vocabularies held in memory).
  // `what` names the source in error messages.
  static WordPiece from_tokens(const std::vector<std::string>& tokens,
                               WordPieceOptions options = {},
                               const std::string& what = "vocabulary");

  // Tokenizes one text. Throws InvalidArgument on invalid UTF-8, naming the
  // byte offset.
  Encoding encode(std::string_view text) const;
  // The same into a caller-owned vector (cleared first), so a hot loop can
  // reuse its buffer. Returns whether the pieces were cut to fit max_length.
  bool encode_into(std::string_view text, std::vector<int32_t>& ids) const;
  // Tokenizes each text and pads to the longest. An empty batch gives
  // batch = seq_len = 0. Throws InvalidArgument naming the text index and byte
  // offset of the first invalid UTF-8.
  BatchEncoding encode_batch(std::span<const std::string_view> texts) const;
  BatchEncoding encode_batch(std::span<const std::string> texts) const;

  // The id of `token`, if in the vocabulary.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token of `id`; throws InvalidArgument when out of range.
  std::string_view id_to_token(int32_t id) const;

  int vocab_size() const;
  const WordPieceOptions& options() const;
  int32_t cls_id() const;
  int32_t sep_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  // -1 when the vocabulary has no [MASK].
  int32_t mask_id() const;

 private:
  struct Impl;
  explicit WordPiece(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace fanin::text
