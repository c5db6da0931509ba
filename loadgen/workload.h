#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/profile_update.h"
#include "core/segment_catalog.h"

namespace segd {

// xoshiro256** (Blackman & Vigna), seeded through splitmix64: a small, fast PRNG whose
// output depends only on its seed, so a workload replays exactly on any machine.
class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t Next();
  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) (Lemire's multiply-shift; bias below 2^-64 * n, irrelevant here).
  // REQUIRES: n > 0.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t s_[4];
};

// Draws ranks 1..n with P(k) ∝ 1 / k^exponent in O(1) expected time and O(1) memory,
// by rejection-inversion (Hörmann & Derflinger 1996, as in Apache Commons'
// RejectionInversionZipfSampler). REQUIRES: n >= 1, exponent > 0.
class ZipfSampler {
 public:
  ZipfSampler(uint64_t n, double exponent);
  uint64_t Sample(Rng& rng) const;

 private:
  double H(double x) const;
  double HIntegral(double x) const;
  double HIntegralInverse(double x) const;

  uint64_t n_;
  double exponent_;
  double h_integral_x1_;
  double h_integral_n_;
  double s_;
};

enum class KeySkew : uint8_t { kUniform, kZipf };

struct WorkloadOptions {
  uint64_t profiles = 1'000'000;  // keys u0 … u{profiles-1}
  uint64_t seed = 1;
  KeySkew skew = KeySkew::kUniform;
  double zipf_exponent = 0.99;  // with KeySkew::kZipf: rank k is key u{k-1}
};

// The standard benchmark workload of shared/BENCHMARK.md, in the engine's own types:
// preloaded profiles (attributes + 20 events of history), the update stream, and the
// 20 standard segments.
//
// Determinism: MakeProfile(n, now) depends only on (seed, n, now), so profiles can be
// made in any order or in parallel by several Workloads of one seed. The update
// stream depends on (seed, profiles, skew) and on how many updates were drawn before.
//
// Thread safety: MakeProfile is const and may run concurrently; NextUpdate may not.
class Workload {
 public:
  // Event types of the stream mix, and their shares in percent.
  static constexpr std::string_view kPageView = "page_view";      // 70
  static constexpr std::string_view kAddToCart = "add_to_cart";   // 15
  static constexpr std::string_view kPurchase = "purchase";       // 5
  static constexpr std::string_view kLogin = "login";             // 7
  static constexpr std::string_view kEmailClick = "email_click";  // 3
  static constexpr int64_t kHistoryEvents = 20;
  static constexpr int64_t kHistorySpanMs = 30 * 86'400'000LL;  // history: last 30 days
  static constexpr int64_t kSignupSpanMs = 365 * 86'400'000LL;  // signup_at: last 365 days
  static constexpr uint32_t kAttributeUpdatePercent = 10;

  explicit Workload(const WorkloadOptions& options);
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  const WorkloadOptions& options() const { return options_; }

  // The preloaded profile of key u{n}: attributes country, device, plan, age, ltv,
  // email, signup_at, tags, newsletter, and kHistoryEvents events in history (time)
  // order, each at a time in (now_ms - kHistorySpanMs, now_ms).
  ProfileData MakeProfile(uint64_t n, int64_t now_ms) const;
  // The same, overwriting `*profile` and reusing its storage (as NextUpdate does).
  void MakeProfile(uint64_t n, int64_t now_ms, ProfileData* profile) const;

  // The next update of the stream: one event at time now_ms for a key drawn by the
  // skew; kAttributeUpdatePercent % of updates also set `plan`, or increment `ltv` by
  // the amount when the event is a purchase.
  ProfileUpdate NextUpdate(int64_t now_ms);
  // The same, overwriting `*update` and reusing its storage: a caller that refills the
  // same updates allocates nothing once their capacities have grown.
  void NextUpdate(int64_t now_ms, ProfileUpdate* update);

  // The 20 standard segments of BENCHMARK.md, ids and rules verbatim.
  static std::vector<SegmentSpec> StandardSegments();

  // "u{n}".
  static std::string Key(uint64_t n);
  static void AppendKey(uint64_t n, std::string* out);

 private:
  uint64_t NextKeyIndex();

  WorkloadOptions options_;
  Rng rng_;
  ZipfSampler key_zipf_;
  uint64_t next_order_ = 0;  // stream purchases get order ids "o0", "o1", …
};

}  // namespace segd
