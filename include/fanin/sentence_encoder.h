// fanin/sentence_encoder.h: text in, sentence embeddings out
// (all-MiniLM-L6-v2: WordPiece tokenizer + BERT encoder + mean pooling + L2
// normalisation, the same vectors as sentence-transformers).
//
// Contract: immutable once loaded; embed() may run on many threads at once,
// each with its own stream. Invalid UTF-8 raises InvalidArgument naming the
// text index and byte offset.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fanin/bert.h"

namespace fanin {

class Stream;
namespace text {
class WordPiece;
}

class SentenceEncoder {
 public:
  // Loads a sentence-transformers folder (config.json, model.safetensors,
  // vocab.txt, optional sentence_bert_config.json for max_seq_length).
  // `max_length` <= 0 takes the folder's value (256 for all-MiniLM-L6-v2).
  static std::shared_ptr<SentenceEncoder> load(const std::string& folder, Device& device,
                                               DType dtype = DType::kF32, int max_length = 0);
  // A random-weight encoder of the given architecture with the vocabulary of
  // `vocab_file` (benchmarks where real weights are not at hand).
  static std::shared_ptr<SentenceEncoder> random(const BertConfig& config,
                                                 const std::string& vocab_file, Device& device,
                                                 DType dtype = DType::kF32, int max_length = 256);

  // Embeddings of `texts`, row i for texts[i], each `dim()` floats. Texts are
  // batched by token length (batch_size per launch) so that little compute
  // goes to padding. Runs on `stream` and waits for it.
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts, Stream& stream,
                                        int batch_size = 64) const;

  // Token ids of one text ([CLS] ... [SEP], cut to max_length).
  std::vector<int32_t> tokenize(std::string_view text) const;
  // Embeddings of already-tokenized rows (each [CLS] ... [SEP]).
  std::vector<std::vector<float>> embed_tokens(const std::vector<std::vector<int32_t>>& rows,
                                               Stream& stream, int batch_size = 64) const;

  // Encodes one batch of token rows (each [CLS] ... [SEP], valid ids) on
  // `stream`: packed end to end where the device takes packed sequences
  // (no work on padding), else padded to the longest. Returns the f32
  // embeddings [rows, dim()] on the device, ready once the stream reaches
  // them. The rows are read during the call only.
  Tensor encode_batch(const std::vector<const std::vector<int32_t>*>& rows, Stream& stream) const;

  int64_t dim() const noexcept;
  int max_length() const noexcept { return max_length_; }
  const Bert& model() const noexcept { return *bert_; }
  const text::WordPiece& tokenizer() const noexcept { return *tokenizer_; }

  SentenceEncoder(std::shared_ptr<Bert> bert, std::shared_ptr<text::WordPiece> tokenizer,
                  int max_length);

 private:
  std::shared_ptr<Bert> bert_;
  std::shared_ptr<text::WordPiece> tokenizer_;
  int max_length_;
};

}  // namespace fanin
