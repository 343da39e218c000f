// CostModel: the per-device batch-time estimate behind the engine's
// routing (Note [Routing by expected finish] in src/serving/batch_queue.h).
#include <gtest/gtest.h>

#include "serving/batch_queue.h"

namespace fanin::serving {
namespace {

TEST(CostModel, TheFirstSampleIsWarmUpAndDropped) {
  CostModel m;
  EXPECT_FALSE(m.measured());
  EXPECT_EQ(m.estimate(8), 0.0);
  m.add(8, 50000);  // first launch, plans: not a sample
  EXPECT_FALSE(m.measured());
  m.add(8, 100);
  EXPECT_TRUE(m.measured());
  EXPECT_DOUBLE_EQ(m.estimate(8), 100);
}

TEST(CostModel, FlatCostStaysFlat) {
  CostModel m;
  m.add(1, 1e6);
  for (int i = 0; i < 20; ++i) m.add(1 + (i * 7) % 64, 200);
  EXPECT_NEAR(m.estimate(1), 200, 1);
  EXPECT_NEAR(m.estimate(64), 200, 1);
}

TEST(CostModel, LinearCostIsFittedAcrossBatchSizes) {
  CostModel m;
  m.add(4, 1e6);
  for (int i = 0; i < 30; ++i) {
    const double n = 1 + (i * 13) % 64;
    m.add(n, 10 + 5 * n);
  }
  EXPECT_NEAR(m.estimate(1), 15, 0.5);
  EXPECT_NEAR(m.estimate(32), 170, 1);
  EXPECT_NEAR(m.estimate(128), 650, 3);  // extrapolated
}

TEST(CostModel, OneBatchSizeGivesItsMean) {
  CostModel m;
  m.add(16, 1);
  m.add(16, 100);
  m.add(16, 120);
  const double e = m.estimate(16);
  EXPECT_GT(e, 100);
  EXPECT_LT(e, 120);
  EXPECT_DOUBLE_EQ(m.estimate(1), e);
}

TEST(CostModel, AnOutlierMovesTheEstimateAtMostByItsClip) {
  CostModel m;
  m.add(8, 1);
  for (int i = 0; i < 10; ++i) m.add(8, 100);
  m.add(8, 1e7);  // a stall: clipped to 4x
  EXPECT_LT(m.estimate(8), 400);
  EXPECT_GT(m.estimate(8), 100);
  // And recent samples pull it back.
  for (int i = 0; i < 20; ++i) m.add(8, 100);
  EXPECT_NEAR(m.estimate(8), 100, 5);
}

}  // namespace
}  // namespace fanin::serving
