// The text payload (Note [Engine payloads]): sentence encoders, inputs
// tokenized on the submitting thread.
#include <algorithm>

#include "core/check.h"
#include "fanin/device.h"
#include "serving/payload.h"
#include "text/wordpiece.h"

namespace fanin::serving {

void check_replica_devices(const std::vector<Device*>& devices);  // payload.cpp

namespace {

// BERT's WordPiece decoding ("##" pieces joined to the word before), then
// the tokenizer's clean-up of spaces before punctuation and contractions.
std::string join_pieces(const std::vector<std::string_view>& pieces) {
  std::string out;
  for (std::string_view p : pieces) {
    if (p.substr(0, 2) == "##") {
      out.append(p.substr(2));
    } else {
      if (!out.empty()) out.push_back(' ');
      out.append(p);
    }
  }
  static const std::pair<std::string_view, std::string_view> kCleanup[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},   {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kCleanup) {
    for (size_t at = out.find(from); at != std::string::npos; at = out.find(from, at + to.size()))
      out.replace(at, from.size(), to);
  }
  return out;
}

class TextPayload final : public Payload {
 public:
  TextPayload(std::vector<std::shared_ptr<const SentenceEncoder>> encoders, EngineInfo info)
      : Payload(std::move(info)), encoders_(std::move(encoders)),
        tok_(encoders_.front()->tokenizer()) {}

  size_t replicas() const noexcept override { return encoders_.size(); }
  Device& device(size_t r) const noexcept override { return encoders_[r]->model().device(); }

  void check_options(const EngineOptions& o) const override {
    FANIN_CHECK(!o.use_graphs && o.preferred_batch_sizes.empty(), kInvalidArgument,
                "[Engine] a sentence encoder's batches have variable shapes: use_graphs and "
                "preferred_batch_sizes are not supported with text");
  }

  Admitted admit_texts(const std::vector<std::string>& texts, bool truncate,
                       const char* op) const override {
    Admitted a = start(texts.size(), op);
    for (size_t i = 0; i < texts.size(); ++i) {
      EngineRequest& r = *a.inputs[i];
      bool cut;
      try {
        cut = tok_.encode_into(texts[i], r.tokens);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kInvalidArgument) throw;
        FANIN_THROW(kInvalidArgument, op, " text ", i, ": ", e.message());
      }
      finish(a, i, cut, truncate, op);
    }
    return a;
  }

  Admitted admit_token_ids(std::vector<std::vector<int32_t>> inputs, bool truncate,
                           const char* op) const override {
    Admitted a = start(inputs.size(), op);
    const int32_t vocab = tok_.vocab_size();
    const size_t max_len = static_cast<size_t>(info_.max_length);
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int32_t>& ids = inputs[i];
      for (size_t j = 0; j < ids.size(); ++j)
        FANIN_CHECK(ids[j] >= 0 && ids[j] < vocab, kInvalidArgument, op, " input ", i,
                    " token ", j, " is id ", ids[j], ", outside the vocabulary of ", vocab);
      const bool framed = ids.size() >= 2 && ids.front() == tok_.cls_id() &&
                          ids.back() == tok_.sep_id();
      std::vector<int32_t>& t = a.inputs[i]->tokens;
      if (framed) {
        t = std::move(ids);
      } else {
        t.reserve(ids.size() + 2);
        t.push_back(tok_.cls_id());
        t.insert(t.end(), ids.begin(), ids.end());
        t.push_back(tok_.sep_id());
      }
      const bool cut = t.size() > max_len;
      if (cut) {
        t.resize(max_len);
        t.back() = tok_.sep_id();
      }
      finish(a, i, cut, truncate, op);
    }
    return a;
  }

  bool launch(size_t r, BatchLauncher& launcher, const std::vector<EngineRequest*>& run, int,
              bool, Stream& s) const override {
    std::vector<const std::vector<int32_t>*> rows(run.size());
    for (size_t i = 0; i < run.size(); ++i) rows[i] = &run[i]->tokens;
    launcher.run_text(*encoders_[r], rows, s);
    return false;
  }

  bool warm_up(size_t r, BatchLauncher& launcher, int n, bool, Stream& s,
               double* units) const override {
    const std::vector<int32_t> empty = tok_.encode("").ids;
    const std::vector<const std::vector<int32_t>*> rows(static_cast<size_t>(n), &empty);
    *units = static_cast<double>(n) * static_cast<double>(empty.size());
    launcher.run_text(*encoders_[r], rows, s);
    return false;
  }

  Tokenized tokenize(std::string_view text) const override {
    Tokenized t;
    try {
      t.truncated = tok_.encode_into(text, t.ids);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kInvalidArgument) throw;
      FANIN_THROW(kInvalidArgument, "[Engine::tokenize] ", e.message());
    }
    return t;
  }

  std::vector<std::string> id_to_tokens(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (int32_t id : ids) out.emplace_back(token(id, "[Engine::id_to_tokens]"));
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<std::string_view> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) {
      if (skip_special && special(id)) continue;
      pieces.push_back(token(id, "[Engine::decode]"));
    }
    return join_pieces(pieces);
  }

 private:
  Admitted start(size_t n, const char* op) const {
    FANIN_CHECK(n >= 1, kInvalidArgument, op, " a request needs at least one input, got 0");
    Admitted a;
    a.inputs.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      a.inputs.push_back(std::make_unique<EngineRequest>());
      a.inputs.back()->index = static_cast<int64_t>(i);
    }
    return a;
  }

  void finish(Admitted& a, size_t i, bool cut, bool truncate, const char* op) const {
    EngineRequest& r = *a.inputs[i];
    FANIN_CHECK(!cut || truncate, kInvalidArgument, op, " input ", i, " has more than ",
                info_.max_length, " tokens ([CLS] and [SEP] included) and truncation is off");
    r.cost = static_cast<int64_t>(r.tokens.size());
    a.tokens += r.cost;
    a.truncated += cut ? 1 : 0;
  }

  bool special(int32_t id) const {
    return id == tok_.cls_id() || id == tok_.sep_id() || id == tok_.pad_id() ||
           id == tok_.unk_id() || id == tok_.mask_id();
  }

  std::string_view token(int32_t id, const char* op) const {
    FANIN_CHECK(id >= 0 && id < tok_.vocab_size(), kInvalidArgument, op, " token id ", id,
                " outside the vocabulary of ", tok_.vocab_size());
    return tok_.id_to_token(id);
  }

  const std::vector<std::shared_ptr<const SentenceEncoder>> encoders_;
  const text::WordPiece& tok_;  // replica 0's; the replicas' vocabularies agree
};

}  // namespace

std::unique_ptr<Payload> make_payload(std::vector<std::shared_ptr<const SentenceEncoder>> encoders) {
  std::vector<Device*> devices;
  for (size_t i = 0; i < encoders.size(); ++i) {
    FANIN_CHECK(encoders[i] != nullptr, kInvalidArgument,
                encoders.size() == 1 ? std::string("[Engine] sentence encoder is null")
                                     : detail::str("[Engine] sentence encoder replica ", i,
                                                   " is null"));
    devices.push_back(&encoders[i]->model().device());
    const SentenceEncoder& a = *encoders[0];
    const SentenceEncoder& b = *encoders[i];
    FANIN_CHECK(a.dim() == b.dim() && a.max_length() == b.max_length() &&
                    a.model().config().vocab_size == b.model().config().vocab_size &&
                    a.tokenizer().pad_id() == b.tokenizer().pad_id(),
                kInvalidArgument, "[Engine] sentence encoder replica ", i, " on ",
                devices.back()->name(), " differs from replica 0 (dim ", b.dim(), " vs ", a.dim(),
                ", max_length ", b.max_length(), " vs ", a.max_length(), ", vocabulary ",
                b.model().config().vocab_size, " vs ", a.model().config().vocab_size, ")");
  }
  check_replica_devices(devices);
  const SentenceEncoder& e = *encoders.front();
  const BertConfig& c = e.model().config();
  EngineInfo info;
  info.kind = PayloadKind::kText;
  info.model_name = detail::str("bert-", c.layers, "x", c.hidden);
  info.input_shape = {e.max_length()};
  info.output_shape = {e.dim()};
  info.dtype = e.model().dtype();
  info.input_dtype = DType::kI32;
  info.max_length = e.max_length();
  info.vocab_size = e.tokenizer().vocab_size();
  for (Device* d : devices) info.devices.push_back(d->name());
  return std::make_unique<TextPayload>(std::move(encoders), std::move(info));
}

}  // namespace fanin::serving
