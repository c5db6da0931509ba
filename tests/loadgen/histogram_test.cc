#include "loadgen/histogram.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <thread>
#include <vector>

#include "loadgen/workload.h"

namespace segd::load {
namespace {

// The nearest-rank percentile of sorted `v`: the smallest value with at least p % of the
// samples at or below it.
uint64_t Reference(const std::vector<uint64_t>& sorted, double p) {
  const auto rank = std::max<size_t>(
      1, static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()))));
  return sorted[rank - 1];
}

// Latency-like samples: log-normal around 2 ms, with a tail up to seconds.
std::vector<uint64_t> Samples(uint64_t seed, size_t n) {
  Rng rng(seed);
  std::vector<uint64_t> v(n);
  for (uint64_t& x : v) {
    // Sum of uniforms: roughly normal, in [-3, 3].
    double z = 0;
    for (int i = 0; i < 6; ++i) z += rng.Uniform();
    z -= 3;
    x = static_cast<uint64_t>(2e6 * std::exp(2.0 * z));
  }
  return v;
}

constexpr double kPercentiles[] = {0, 0.1, 1, 10, 50, 90, 99, 99.9, 99.99, 100};

TEST_CASE("Histogram buckets tile the value range without gaps", "[loadgen][histogram]") {
  REQUIRE(Histogram::BucketLow(0) == 0);
  for (size_t b = 0; b + 1 < Histogram::kBuckets; ++b) {
    REQUIRE(Histogram::BucketHigh(b) + 1 == Histogram::BucketLow(b + 1));
  }
  REQUIRE(Histogram::BucketHigh(Histogram::kBuckets - 1) == Histogram::kMaxTrackable - 1);
  Rng rng(301);
  for (int i = 0; i < 100'000; ++i) {
    const uint64_t v = rng.Next() >> (22 + rng.Below(42));  // every magnitude below 2^42
    const size_t b = Histogram::BucketOf(v);
    REQUIRE(Histogram::BucketLow(b) <= v);
    REQUIRE(v <= Histogram::BucketHigh(b));
    // Relative width at most 1 / kSubBuckets.
    REQUIRE(static_cast<double>(Histogram::BucketHigh(b) - Histogram::BucketLow(b)) <=
            static_cast<double>(std::max<uint64_t>(v, 1)) / Histogram::kSubBuckets);
  }
}

TEST_CASE("Histogram percentiles match a sorted reference within half a bucket",
          "[loadgen][histogram]") {
  std::vector<uint64_t> values = Samples(301, 200'000);
  Histogram h;
  for (uint64_t v : values) h.Record(v);
  std::sort(values.begin(), values.end());
  REQUIRE(h.count() == values.size());
  REQUIRE(h.min() == values.front());
  REQUIRE(h.max() == values.back());
  double sum = 0;
  for (uint64_t v : values) sum += static_cast<double>(v);
  REQUIRE(h.Mean() == Approx(sum / static_cast<double>(values.size())).epsilon(1e-9));
  for (double p : kPercentiles) {
    INFO("p" << p);
    const auto ref = static_cast<double>(Reference(values, p));
    const auto got = static_cast<double>(h.Percentile(p));
    REQUIRE(std::abs(got - ref) <= ref / (2.0 * Histogram::kSubBuckets) + 1);
  }
  // The extremes are exact.
  REQUIRE(h.Percentile(0) == values.front());
  REQUIRE(h.Percentile(100) == values.back());
}

TEST_CASE("Histogram is exact below 2 * kSubBuckets", "[loadgen][histogram]") {
  Rng rng(7);
  std::vector<uint64_t> values(10'000);
  for (uint64_t& v : values) v = rng.Below(2 * Histogram::kSubBuckets);
  Histogram h;
  for (uint64_t v : values) h.Record(v);
  std::sort(values.begin(), values.end());
  for (double p : kPercentiles) REQUIRE(h.Percentile(p) == Reference(values, p));
}

TEST_CASE("An empty histogram reports zeros", "[loadgen][histogram]") {
  Histogram h;
  REQUIRE(h.count() == 0);
  REQUIRE(h.min() == 0);
  REQUIRE(h.max() == 0);
  REQUIRE(h.Mean() == 0);
  REQUIRE(h.Percentile(50) == 0);
  const LatencySummary s = SummarizeNs(h);
  REQUIRE(s.count == 0);
  REQUIRE(s.p99_ms == 0);
}

TEST_CASE("Histogram values past kMaxTrackable share the last bucket, max stays exact",
          "[loadgen][histogram]") {
  Histogram h;
  h.Record(5);
  h.Record(Histogram::kMaxTrackable * 3);
  REQUIRE(h.count() == 2);
  REQUIRE(h.max() == Histogram::kMaxTrackable * 3);
  REQUIRE(h.Percentile(100) >= Histogram::kMaxTrackable / 2);
  REQUIRE(h.Percentile(100) <= h.max());
  REQUIRE(h.Percentile(50) == 5);
}

TEST_CASE("Histogram Add merges, TakeFrom moves and empties", "[loadgen][histogram]") {
  std::vector<uint64_t> values = Samples(42, 50'000);
  Histogram whole, first, second;
  for (size_t i = 0; i < values.size(); ++i) {
    whole.Record(values[i]);
    (i % 2 == 0 ? first : second).Record(values[i]);
  }
  Histogram merged;
  merged.Add(first);
  merged.Add(second);
  REQUIRE(merged.count() == whole.count());
  REQUIRE(merged.min() == whole.min());
  REQUIRE(merged.max() == whole.max());
  for (double p : kPercentiles) REQUIRE(merged.Percentile(p) == whole.Percentile(p));

  Histogram taken;
  taken.TakeFrom(first);
  taken.TakeFrom(second);
  REQUIRE(first.count() == 0);
  REQUIRE(second.count() == 0);
  REQUIRE(first.max() == 0);
  REQUIRE(taken.count() == whole.count());
  REQUIRE(taken.Mean() == Approx(whole.Mean()));
  for (double p : kPercentiles) REQUIRE(taken.Percentile(p) == whole.Percentile(p));

  taken.Reset();
  REQUIRE(taken.count() == 0);
  REQUIRE(taken.Percentile(99) == 0);
}

TEST_CASE("Histogram counts every Record from concurrent threads", "[loadgen][histogram]") {
  Histogram h;
  Histogram interval;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(static_cast<uint64_t>(t) + 1);
      for (int i = 0; i < kPerThread; ++i) h.Record(rng.Below(1'000'000'000));
    });
  }
  // A reader taking intervals meanwhile loses nothing.
  uint64_t taken = 0;
  Histogram sink;
  for (int i = 0; i < 50; ++i) {
    sink.Reset();
    sink.TakeFrom(h);
    taken += sink.count();
  }
  for (std::thread& t : threads) t.join();
  taken += h.count();
  REQUIRE(taken == uint64_t{kThreads} * kPerThread);
}

TEST_CASE("SummarizeNs reports milliseconds", "[loadgen][histogram]") {
  Histogram h;
  for (int i = 1; i <= 1000; ++i) h.Record(static_cast<uint64_t>(i) * 1'000'000);  // 1..1000 ms
  const LatencySummary s = SummarizeNs(h);
  REQUIRE(s.count == 1000);
  REQUIRE(s.p50_ms == Approx(500).epsilon(0.005));
  REQUIRE(s.p90_ms == Approx(900).epsilon(0.005));
  REQUIRE(s.p99_ms == Approx(990).epsilon(0.005));
  REQUIRE(s.p999_ms == Approx(999).epsilon(0.005));
  REQUIRE(s.max_ms == 1000);
  REQUIRE(s.mean_ms == Approx(500.5));
}

}  // namespace
}  // namespace segd::load
