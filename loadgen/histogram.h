#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace segd::load {

// A log-bucketed histogram of non-negative integer samples (segload records
// nanoseconds), in the manner of HdrHistogram: values below 2 * kSubBuckets have a bucket
// each; above that, every power-of-two range [2^e, 2^(e+1)) is split into kSubBuckets
// equal buckets. A percentile is reported as the midpoint of its bucket, clamped to the
// exact min and max, so its relative error is at most 1 / (2 * kSubBuckets) (0.4 %).
// Values at or above kMaxTrackable share the last bucket (max() stays exact).
//
// Percentiles use the nearest-rank definition: Percentile(p) is the smallest recorded
// value v such that at least p % of the samples are <= v (p = 0: the minimum).
//
// Thread safety: Record may run concurrently with itself and with every reader
// (relaxed atomics; a reader racing a writer sees some subset of the samples in flight).
// Reset and TakeFrom must not race each other on the same histogram.
class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  static constexpr int kMaxValueBits = 42;  // ~73 minutes in ns
  static constexpr uint64_t kMaxTrackable = uint64_t{1} << kMaxValueBits;
  static constexpr size_t kBuckets = (kMaxValueBits - kSubBucketBits + 1) * kSubBuckets;

  Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Record(uint64_t value);

  // The number of samples (a sum over the buckets: meant for reports, not hot paths).
  uint64_t count() const;
  // 0 when empty.
  uint64_t min() const;
  uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  double Mean() const;

  // REQUIRES: 0 <= p <= 100. 0 when empty.
  uint64_t Percentile(double p) const;

  // Adds every sample of `other`.
  void Add(const Histogram& other);
  // Moves every sample of `other` into this one and empties `other` (per bucket, so a
  // concurrent Record into `other` lands in exactly one of the two).
  void TakeFrom(Histogram& other);
  void Reset();

  // The bucket of `value`, and the range of values a bucket holds (exposed for tests).
  static size_t BucketOf(uint64_t value);
  static uint64_t BucketLow(size_t bucket);
  static uint64_t BucketHigh(size_t bucket);  // inclusive

 private:
  void MergeSummary(uint64_t sum, uint64_t min, uint64_t max);

  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> min_{UINT64_MAX};
  std::atomic<uint64_t> max_{0};
};

// The figures segload reports of a histogram of nanoseconds, in milliseconds.
struct LatencySummary {
  uint64_t count = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0, mean_ms = 0;
};
LatencySummary SummarizeNs(const Histogram& histogram);

}  // namespace segd::load
