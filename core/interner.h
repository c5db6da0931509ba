#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"

namespace segd {

// Maps strings (attribute, property and event type names, and low-cardinality string
// values) to dense ids and back. Ids are never reused and strings never move, so a
// string_view from Get() stays valid for the interner's lifetime.
//
// Thread safety: none; each shard owns one.
class Interner {
 public:
  Interner() = default;
  Interner(const Interner&) = delete;
  Interner& operator=(const Interner&) = delete;

  // Checks a small cache of the ids it returned last before the table: a store interns
  // the same few dozen names over and over (~60 for each replayed profile).
  uint32_t Intern(std::string_view s) {
    uint32_t* set = &recent_[2 * RecentSet(s)];
    if (set[0] != 0 && SameString(strings_[set[0] - 1], s)) return set[0] - 1;
    return InternAfterMiss(s, set);
  }
  std::optional<uint32_t> Find(std::string_view s) const { return Find(s, Hash(s)); }
  // The same, given Hash(s).
  std::optional<uint32_t> Find(std::string_view s, size_t hash) const {
    const uint32_t id1 = FindId1(s, hash);
    if (id1 == 0) return std::nullopt;
    return id1 - 1;
  }
  // The hash the table keys `s` by.
  static size_t Hash(std::string_view s) { return StringHash{}(s); }
  // Starts loading what Find(s) or Intern(s) will read of the table (given Hash(s)): the
  // slot a string hashes to and the one after, where it is almost always found.
  void Prefetch(size_t hash) const {
    if (slots_.empty()) return;
    const size_t i = hash & mask_;
    __builtin_prefetch(&slots_[i]);
    __builtin_prefetch(&slots_[(i + 1) & mask_]);
  }
  // REQUIRES: id was returned by Intern().
  std::string_view Get(uint32_t id) const { return strings_[id]; }
  size_t size() const { return strings_.size(); }
  size_t MemoryBytes() const;

 private:
  // Find's id + 1, or 0: an integer, which comes back in a register (an optional returned
  // from a function with several returns went through the stack, its flag and value
  // stored apart and loaded as one: a store-forwarding stall on every lookup).
  uint32_t FindId1(std::string_view s, size_t hash) const;
  // The cache: 64 sets of two ways.
  static constexpr int kRecentSetBits = 6;
  // From the size and three bytes: cheaper than the hash, and enough to tell apart a
  // few dozen names.
  static size_t RecentSet(std::string_view s) {
    const size_t n = s.size();
    if (n == 0) return 0;
    const auto byte = [&](size_t i) { return uint32_t{static_cast<uint8_t>(s[i])}; };
    const uint32_t w =
        static_cast<uint32_t>(n) | byte(0) << 8 | byte(n / 2) << 16 | byte(n - 1) << 24;
    return (w * 0x9E3779B1u) >> (32 - kRecentSetBits);
  }
  // Intern, when `s` is not in the first way of its set.
  uint32_t InternAfterMiss(std::string_view s, uint32_t* set);

  // A string in the table: its words (text_internal::WordsOf), size and id + 1 (0: an
  // empty slot). A string of up to 16 bytes (most names and interned values) is compared
  // within its slot, with no second cache miss; a longer one is compared in storage_
  // when its words match.
  struct Slot {
    text_internal::Words words = {0, 0};
    uint32_t size = 0;
    uint32_t id1 = 0;
  };
  void Insert(Slot slot, size_t hash);
  // Puts `slot` in the first free slot from hash's. REQUIRES: one is free.
  void Place(Slot slot, size_t hash);
  void Grow();

  std::deque<std::string> storage_;  // stable addresses
  std::vector<std::string_view> strings_;
  // Open addressing with linear probing from Hash(s) & mask_, at most half full: a
  // lookup rarely reads past the slot Prefetch loaded. (Abseil's table prefetches a
  // probe group's first slot, and the string's slot is up to 15 slots further.)
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  // By RecentSet, two ways each: id + 1 of a string Intern returned, 0 if none.
  std::array<uint32_t, 2 << kRecentSetBits> recent_ = {};
};

}  // namespace segd
