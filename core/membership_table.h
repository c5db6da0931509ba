#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "core/prefetch.h"

namespace segd {

// The segment memberships and the timer of every profile of a shard, one row per
// profile slot: [timer due time][membership bits, one per segment slot ...]. A row of
// up to 64 segments is 16 bytes, so evaluating any number of a profile's segments and
// rescheduling its timer touch one cache line, where a bitset per segment would touch
// one per segment.
//
// Thread safety: none; owned by one shard.
class MembershipTable {
 public:
  static constexpr int64_t kNoTimer = std::numeric_limits<int64_t>::max();

  // Makes room for profile slots [0, slots) and segment slots [0, segments); new rows
  // have no memberships and no timer.
  void Reserve(uint32_t slots, uint32_t segments) {
    const uint32_t words = (segments + 63) / 64;
    if (words > words_) Widen(words);
    if (slots > slots_) {
      rows_.resize(static_cast<size_t>(slots) * stride(), 0);
      for (uint32_t p = slots_; p < slots; ++p) rows_[static_cast<size_t>(p) * stride()] = kNoTimer;
      slots_ = slots;
    }
  }

  bool Get(uint32_t p, uint32_t segment) const { return (Word(p, segment) >> (segment & 63)) & 1; }
  void Set(uint32_t p, uint32_t segment, bool member) {
    const uint64_t bit = uint64_t{1} << (segment & 63);
    uint64_t& w = Word(p, segment);
    w = member ? (w | bit) : (w & ~bit);
  }
  int64_t& timer(uint32_t p) {
    return reinterpret_cast<int64_t&>(rows_[static_cast<size_t>(p) * stride()]);
  }

  // Starts loading row p, if it exists.
  void PrefetchRow(uint32_t p) const {
    if (p < slots_) PrefetchLine(&rows_[static_cast<size_t>(p) * stride()]);
  }

  // Calls f(p) for every profile slot that is a member of `segment`.
  template <typename F>
  void ForEachMember(uint32_t segment, const F& f) const {
    if (segment / 64 >= words_) return;
    const uint64_t bit = uint64_t{1} << (segment & 63);
    const size_t offset = 1 + segment / 64;
    for (uint32_t p = 0; p < slots_; ++p) {
      if (rows_[static_cast<size_t>(p) * stride() + offset] & bit) f(p);
    }
  }

  // Clears a row (the profile is gone) or a column (the segment is gone).
  void ClearRow(uint32_t p) {
    const size_t base = static_cast<size_t>(p) * stride();
    rows_[base] = kNoTimer;
    for (uint32_t w = 0; w < words_; ++w) rows_[base + 1 + w] = 0;
  }
  void ClearSegment(uint32_t segment) {
    ForEachMember(segment, [&](uint32_t p) { Set(p, segment, false); });
  }

  size_t MemoryBytes() const { return rows_.capacity() * sizeof(uint64_t); }

 private:
  size_t stride() const { return 1 + words_; }
  uint64_t& Word(uint32_t p, uint32_t segment) {
    return rows_[static_cast<size_t>(p) * stride() + 1 + segment / 64];
  }
  uint64_t Word(uint32_t p, uint32_t segment) const {
    if (p >= slots_ || segment / 64 >= words_) return 0;
    return rows_[static_cast<size_t>(p) * stride() + 1 + segment / 64];
  }
  void Widen(uint32_t words) {
    std::vector<uint64_t> wider(static_cast<size_t>(slots_) * (1 + words), 0);
    for (uint32_t p = 0; p < slots_; ++p) {
      for (uint32_t w = 0; w < stride(); ++w) {
        wider[static_cast<size_t>(p) * (1 + words) + w] =
            rows_[static_cast<size_t>(p) * stride() + w];
      }
    }
    rows_ = std::move(wider);
    words_ = words;
  }

  uint32_t slots_ = 0;
  uint32_t words_ = 1;
  std::vector<uint64_t> rows_;
};

}  // namespace segd
