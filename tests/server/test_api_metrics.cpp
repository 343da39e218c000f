// ServerStats and the te_* Prometheus text.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "server/api/metrics.h"

namespace fanin::server::api {
namespace {

// Checks the exposition format: every sample's family has HELP and TYPE
// before it, histogram buckets are cumulative and end in +Inf == _count.
void expect_valid_exposition(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::map<std::string, std::string> types;
  const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$)");
  std::map<std::string, double> last_bucket;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      ASSERT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      ASSERT_EQ(types.count(name), 0u) << "TYPE twice: " << line;
      types[name] = type;
      continue;
    }
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, sample_re)) << line;
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (family.size() > s.size() && family.compare(family.size() - s.size(), s.size(), s) == 0 &&
          types.count(family.substr(0, family.size() - s.size())))
        family = family.substr(0, family.size() - s.size());
    }
    ASSERT_EQ(types.count(family), 1u) << "no TYPE before " << line;
    const double v = std::stod(m[4]);
    if (std::string(m[1]).size() > 7 && std::string(m[1]).ends_with("_bucket")) {
      EXPECT_GE(v, last_bucket[family]) << "buckets not cumulative: " << line;
      last_bucket[family] = v;
    }
    if (std::string(m[1]).ends_with("_count") && types[family] == "histogram") {
      EXPECT_EQ(v, last_bucket[family]) << "+Inf bucket != _count for " << family;
    }
  }
}

TEST(ApiMetrics, TeiNamesAndValidFormat) {
  ServerStats stats(512);
  RequestObservation ok;
  ok.api = Api::kTei;
  ok.route = "/embed";
  ok.inference = true;
  ok.batch = true;
  ok.total_us = 2500;
  ok.queue_us = 300;
  ok.inference_us = 2000;
  ok.tokenization_us = 100;
  ok.inputs = 4;
  ok.tokens = 40;
  stats.observe(ok);
  RequestObservation bad = ok;
  bad.status = 422;
  bad.failure = failure_label(Reason::kTooManyInputs);
  stats.observe(bad);
  RequestObservation info;
  info.api = Api::kTei;
  info.route = "/info";
  stats.observe(info);
  stats.record_rejection("unauthorized");
  stats.connection_opened();
  stats.request_started();

  EngineMetrics em;
  em.queue_length = 3;
  em.batch_fill = {0, 5, 0, 2};
  const std::string text = prometheus_text(stats, em);
  expect_valid_exposition(text);
  for (const char* needle :
       {"# TYPE te_request_count counter", "te_request_count{method=\"batch\"} 2",
        "te_request_success{method=\"batch\"} 1", "te_request_failure{err=\"batch_size\"} 1",
        "# TYPE te_request_duration histogram", "te_request_duration_bucket{le=\"+Inf\"} 1",
        "te_request_duration_sum 0.0025", "te_request_duration_count 1",
        "# TYPE te_request_tokenization_duration histogram",
        "# TYPE te_request_queue_duration histogram", "# TYPE te_request_inference_duration histogram",
        "te_request_input_length_bucket{le=\"8\"} 0", "te_request_input_length_bucket{le=\"16\"} 4",
        "te_request_input_length_bucket{le=\"512\"} 4", "te_queue_size 3",
        "te_batch_next_size_bucket{le=\"1\"} 5", "te_batch_next_size_bucket{le=\"4\"} 7",
        "te_embed_count 8", "te_embed_success 4",
        "fanin_http_requests_total{api=\"tei\",route=\"/embed\",status=\"200\"} 1",
        "fanin_http_requests_total{api=\"tei\",route=\"/embed\",status=\"422\"} 1",
        "fanin_http_requests_total{api=\"tei\",route=\"/info\",status=\"200\"} 1",
        "fanin_http_rejections_total{reason=\"unauthorized\"} 1", "fanin_http_in_flight 1",
        "fanin_http_connections 1", "fanin_http_connections_total 1"})
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  EXPECT_EQ(text.find("te_request_input_length_bucket{le=\"1024\"}"), std::string::npos);
}

TEST(ApiMetrics, ReplyPathCountsOnlyMeasuredSteps) {
  ServerStats stats;
  RequestObservation o;
  o.api = Api::kOpenAI;
  o.route = "/v1/embeddings";
  o.inference = true;
  o.inputs = 1;
  o.total_us = 900;
  stats.observe(o);  // answered without the engine: no reply path
  o.resolve_us = 10;
  o.handoff_us = 40;
  o.format_us = 0;  // measured, if below a microsecond
  stats.observe(o);
  const auto s = stats.snapshot();
  EXPECT_EQ(s.duration.count, 2u);
  EXPECT_EQ(s.resolve.count, 1u);
  EXPECT_EQ(s.handoff.count, 1u);
  EXPECT_EQ(s.format.count, 1u);
  EXPECT_DOUBLE_EQ(s.handoff.sum, 40e-6);
  const std::string text = prometheus_text(stats, EngineMetrics{});
  expect_valid_exposition(text);
  for (const char* needle : {"# TYPE fanin_request_resolve_duration histogram",
                             "fanin_request_handoff_duration_count 1",
                             "fanin_request_format_duration_count 1"})
    EXPECT_NE(text.find(needle), std::string::npos) << needle;
}

TEST(ApiMetrics, TeiDurationBuckets) {
  const auto b = tei_duration_buckets();
  ASSERT_EQ(b.size(), 35u);
  EXPECT_DOUBLE_EQ(b[0], 0.000015);
  EXPECT_DOUBLE_EQ(b[1], 0.0000225);
}

TEST(ApiMetrics, ConcurrentObservationsAreAllCounted) {
  ServerStats stats;
  constexpr int kThreads = 4, kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      RequestObservation o;
      o.api = t % 2 ? Api::kOpenAI : Api::kKServe;
      o.route = t % 2 ? "/v1/embeddings" : "/v2/models/{m}/infer";
      o.inference = true;
      o.inputs = 1;
      o.total_us = 1000;
      for (int i = 0; i < kEach; ++i) {
        stats.request_started();
        stats.observe(o);
        stats.request_finished();
        if (i % 100 == 0) (void)prometheus_text(stats, EngineMetrics{});
      }
    });
  for (auto& th : threads) th.join();
  const auto s = stats.snapshot();
  EXPECT_EQ(s.request_count.at("single"), uint64_t{kThreads * kEach});
  EXPECT_EQ(s.duration.count, uint64_t{kThreads * kEach});
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_EQ((s.http_requests.at({"openai", "/v1/embeddings", 200})), uint64_t{2 * kEach});
}

}  // namespace
}  // namespace fanin::server::api
