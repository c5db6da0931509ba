#include "loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>

// Bucket layout. With S = kSubBuckets: values v < 2S are their own bucket (exact). A value
// v >= 2S has shift = bit_width(v) - (kSubBucketBits + 1) >= 1, so that v >> shift lies in
// [S, 2S); its bucket is (shift + 1) * S + ((v >> shift) - S), which continues the exact
// range without a gap: [2S, 4S) maps to buckets [2S, 3S), [4S, 8S) to [3S, 4S), and so on.
// Each bucket of shift s holds 2^s consecutive values, and every value in it is at least
// S * 2^s, hence the relative bucket width of at most 1 / S.
namespace segd::load {
namespace {

void AtomicMin(std::atomic<uint64_t>& target, uint64_t value) {
  uint64_t current = target.load(std::memory_order_relaxed);
  while (value < current &&
         !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

void AtomicMax(std::atomic<uint64_t>& target, uint64_t value) {
  uint64_t current = target.load(std::memory_order_relaxed);
  while (value > current &&
         !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

Histogram::Histogram() : buckets_(new std::atomic<uint64_t>[kBuckets]) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

size_t Histogram::BucketOf(uint64_t value) {
  if (value >= kMaxTrackable) return kBuckets - 1;
  if (value < 2 * kSubBuckets) return static_cast<size_t>(value);
  const int shift = std::bit_width(value) - (kSubBucketBits + 1);
  return static_cast<size_t>((static_cast<uint64_t>(shift) + 1) * kSubBuckets +
                             ((value >> shift) - kSubBuckets));
}

uint64_t Histogram::BucketLow(size_t bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  const uint64_t shift = bucket / kSubBuckets - 1;
  const uint64_t sub = bucket % kSubBuckets + kSubBuckets;
  return sub << shift;
}

uint64_t Histogram::BucketHigh(size_t bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  const uint64_t shift = bucket / kSubBuckets - 1;
  return BucketLow(bucket) + (uint64_t{1} << shift) - 1;
}

void Histogram::Record(uint64_t value) {
  buckets_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  AtomicMin(min_, value);
  AtomicMax(max_, value);
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i < kBuckets; ++i) total += buckets_[i].load(std::memory_order_relaxed);
  return total;
}

uint64_t Histogram::min() const {
  const uint64_t m = min_.load(std::memory_order_relaxed);
  return m == UINT64_MAX ? 0 : m;
}

double Histogram::Mean() const {
  const uint64_t n = count();
  return n == 0
             ? 0.0
             : static_cast<double>(sum_.load(std::memory_order_relaxed)) / static_cast<double>(n);
}

uint64_t Histogram::Percentile(double p) const {
  assert(p >= 0 && p <= 100);
  const uint64_t total = count();
  if (total == 0) return 0;
  const uint64_t rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total))));
  // Under concurrent Records the buckets may hold more than `total` by now, so the walk
  // always ends at a bucket; the last one is the fallback.
  uint64_t seen = 0;
  size_t bucket = kBuckets - 1;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) {
      bucket = i;
      break;
    }
  }
  const uint64_t low = BucketLow(bucket);
  const uint64_t mid = low + (BucketHigh(bucket) - low) / 2;
  return std::clamp(mid, min(), std::max(min(), max()));
}

void Histogram::MergeSummary(uint64_t sum, uint64_t min, uint64_t max) {
  sum_.fetch_add(sum, std::memory_order_relaxed);
  if (min != UINT64_MAX) AtomicMin(min_, min);
  AtomicMax(max_, max);
}

void Histogram::Add(const Histogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) {
    const uint64_t n = other.buckets_[i].load(std::memory_order_relaxed);
    if (n != 0) buckets_[i].fetch_add(n, std::memory_order_relaxed);
  }
  MergeSummary(other.sum_.load(std::memory_order_relaxed),
               other.min_.load(std::memory_order_relaxed),
               other.max_.load(std::memory_order_relaxed));
}

void Histogram::TakeFrom(Histogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) {
    const uint64_t n = other.buckets_[i].exchange(0, std::memory_order_relaxed);
    if (n != 0) buckets_[i].fetch_add(n, std::memory_order_relaxed);
  }
  // A Record racing this call may leave its sum/min/max in `other` while its bucket moved
  // (or the other way round); the next take evens that out.
  MergeSummary(other.sum_.exchange(0, std::memory_order_relaxed),
               other.min_.exchange(UINT64_MAX, std::memory_order_relaxed),
               other.max_.exchange(0, std::memory_order_relaxed));
}

void Histogram::Reset() {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i].store(0, std::memory_order_relaxed);
  sum_.store(0, std::memory_order_relaxed);
  min_.store(UINT64_MAX, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
}

LatencySummary SummarizeNs(const Histogram& histogram) {
  const auto ms = [](uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  LatencySummary s;
  s.count = histogram.count();
  s.p50_ms = ms(histogram.Percentile(50));
  s.p90_ms = ms(histogram.Percentile(90));
  s.p99_ms = ms(histogram.Percentile(99));
  s.p999_ms = ms(histogram.Percentile(99.9));
  s.max_ms = ms(histogram.max());
  s.mean_ms = histogram.Mean() / 1e6;
  return s;
}

}  // namespace segd::load
