#include "fanin/sentence_encoder.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/check.h"
#include "fanin/device.h"
#include "fanin/ops.h"
#include "fanin/stream.h"
#include "text/wordpiece.h"

namespace fanin {
namespace {

int folder_max_length(const std::string& folder) {
  std::ifstream in(folder + "/sentence_bert_config.json");
  if (!in.good()) return 256;
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("max_seq_length") && j["max_seq_length"].is_number_integer())
    return j["max_seq_length"].get<int>();
  return 256;
}

}  // namespace

SentenceEncoder::SentenceEncoder(std::shared_ptr<Bert> bert,
                                 std::shared_ptr<text::WordPiece> tokenizer, int max_length)
    : bert_(std::move(bert)), tokenizer_(std::move(tokenizer)), max_length_(max_length) {}

std::shared_ptr<SentenceEncoder> SentenceEncoder::load(const std::string& folder, Device& device,
                                                       DType dtype, int max_length) {
  if (max_length <= 0) max_length = folder_max_length(folder);
  auto bert = Bert::load(folder, device, dtype);
  FANIN_CHECK(max_length >= 2 && max_length <= bert->config().max_position, kInvalidArgument,
              "[SentenceEncoder::load] max_length ", max_length, " outside 2..",
              bert->config().max_position);
  text::WordPieceOptions opt;
  opt.max_length = max_length;
  auto wp = std::make_shared<text::WordPiece>(
      text::WordPiece::from_vocab_file(folder + "/vocab.txt", opt));
  FANIN_CHECK(wp->vocab_size() == bert->config().vocab_size, kInvalidArgument,
              "[SentenceEncoder::load] '", folder, "': vocab.txt has ", wp->vocab_size(),
              " tokens, config.json says vocab_size ", bert->config().vocab_size);
  return std::make_shared<SentenceEncoder>(std::move(bert), std::move(wp), max_length);
}

std::shared_ptr<SentenceEncoder> SentenceEncoder::random(const BertConfig& config,
                                                         const std::string& vocab_file,
                                                         Device& device, DType dtype,
                                                         int max_length) {
  text::WordPieceOptions opt;
  opt.max_length = max_length;
  auto wp = std::make_shared<text::WordPiece>(text::WordPiece::from_vocab_file(vocab_file, opt));
  BertConfig c = config;
  c.vocab_size = wp->vocab_size();
  auto bert = Bert::random(c, 1234, device, dtype);
  return std::make_shared<SentenceEncoder>(std::move(bert), std::move(wp), max_length);
}

Tensor SentenceEncoder::encode_batch(const std::vector<const std::vector<int32_t>*>& rows,
                                     Stream& stream) const {
  const int64_t n = static_cast<int64_t>(rows.size());
  FANIN_CHECK(n >= 1, kInvalidArgument, "[SentenceEncoder::encode_batch] no rows");
  int64_t seq = 1, total = 0;
  for (const std::vector<int32_t>* t : rows) {
    seq = std::max(seq, static_cast<int64_t>(t->size()));
    total += static_cast<int64_t>(t->size());
  }
  Encoder enc = stream.command_buffer().begin_encoding();
  if (ops::packed_sequences(bert_->device())) {
    std::vector<int32_t> ids, offsets;
    ids.reserve(static_cast<size_t>(total));
    offsets.reserve(static_cast<size_t>(n + 1));
    offsets.push_back(0);
    for (const std::vector<int32_t>* t : rows) {
      ids.insert(ids.end(), t->begin(), t->end());
      offsets.push_back(static_cast<int32_t>(ids.size()));
    }
    Tensor t_ids = Tensor::from_host(ids.data(), ids.size() * 4, {total}, DType::kI32, stream);
    Tensor t_off = Tensor::from_host(offsets.data(), offsets.size() * 4, {n + 1}, DType::kI32,
                                     stream);
    return bert_->forward_packed(t_ids, t_off, seq, stream);
  }
  std::vector<int32_t> ids(static_cast<size_t>(n * seq), tokenizer_->pad_id());
  std::vector<int32_t> lengths(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<int32_t>& t = *rows[static_cast<size_t>(i)];
    std::copy(t.begin(), t.end(), ids.begin() + i * seq);
    lengths[static_cast<size_t>(i)] = static_cast<int32_t>(t.size());
  }
  Tensor t_ids = Tensor::from_host(ids.data(), ids.size() * 4, {n, seq}, DType::kI32, stream);
  Tensor t_len = Tensor::from_host(lengths.data(), lengths.size() * 4, {n}, DType::kI32, stream);
  return bert_->forward(t_ids, t_len, stream);
}

int64_t SentenceEncoder::dim() const noexcept { return bert_->config().hidden; }

std::vector<int32_t> SentenceEncoder::tokenize(std::string_view text) const {
  return tokenizer_->encode(text).ids;
}

std::vector<std::vector<float>> SentenceEncoder::embed(const std::vector<std::string>& texts,
                                                       Stream& stream, int batch_size) const {
  std::vector<std::vector<int32_t>> rows(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    try {
      tokenizer_->encode_into(texts[i], rows[i]);
    } catch (const Error& e) {
      FANIN_THROW(kInvalidArgument, "[SentenceEncoder::embed] text ", i, ": ", e.message());
    }
  }
  return embed_tokens(rows, stream, batch_size);
}

std::vector<std::vector<float>> SentenceEncoder::embed_tokens(
    const std::vector<std::vector<int32_t>>& rows, Stream& stream, int batch_size) const {
  FANIN_CHECK(batch_size >= 1, kInvalidArgument, "[SentenceEncoder::embed] batch_size must be >= 1, got ",
              batch_size);
  const int64_t H = dim();
  const int32_t vocab = static_cast<int32_t>(bert_->config().vocab_size);
  for (size_t i = 0; i < rows.size(); ++i) {
    FANIN_CHECK(!rows[i].empty() && static_cast<int>(rows[i].size()) <= max_length_,
                kInvalidArgument, "[SentenceEncoder::embed_tokens] row ", i, " has ",
                rows[i].size(), " tokens, expected 1..", max_length_);
    for (int32_t id : rows[i])
      FANIN_CHECK(id >= 0 && id < vocab, kInvalidArgument, "[SentenceEncoder::embed_tokens] row ",
                  i, " has token id ", id, " outside the vocabulary of ", vocab);
  }
  // Length bucketing: sort by length so each batch pads little.
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rows[a].size() < rows[b].size(); });
  std::vector<std::vector<float>> out(rows.size());
  std::vector<float> host;
  std::vector<const std::vector<int32_t>*> batch;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(order.size() - start, static_cast<size_t>(batch_size));
    batch.clear();
    for (size_t k = 0; k < n; ++k) batch.push_back(&rows[order[start + k]]);
    host.resize(n * static_cast<size_t>(H));
    {
      Encoder enc = stream.command_buffer().begin_encoding();
      Tensor e = encode_batch(batch, stream);
      e.copy_to_host(host.data(), host.size() * 4, stream);
    }
    stream.synchronize();
    for (size_t k = 0; k < n; ++k)
      out[order[start + k]].assign(host.begin() + static_cast<std::ptrdiff_t>(k * H),
                                   host.begin() + static_cast<std::ptrdiff_t>((k + 1) * H));
  }
  return out;
}

}  // namespace fanin
