#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
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
  std::optional<uint32_t> Find(std::string_view s) const;
  // The same, given Hash(s).
  std::optional<uint32_t> Find(std::string_view s, size_t hash) const;
  // The hash the table keys `s` by.
  static size_t Hash(std::string_view s) { return StringHash{}(s); }
  // Starts loading what Find(s) or Intern(s) will read of the table.
  void Prefetch(std::string_view s) const { ids_.prefetch(s); }
  // REQUIRES: id was returned by Intern().
  std::string_view Get(uint32_t id) const { return strings_[id]; }
  size_t size() const { return strings_.size(); }
  size_t MemoryBytes() const;

 private:
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

  std::deque<std::string> storage_;  // stable addresses
  std::vector<std::string_view> strings_;
  // Keyed by a copy of each string rather than a view of storage_: a short string
  // (most names and interned values) sits inside its slot, so a lookup compares the
  // bytes it has already loaded instead of missing the cache once more.
  StringMap<uint32_t> ids_;
  // By RecentSet, two ways each: id + 1 of a string Intern returned, 0 if none.
  std::array<uint32_t, 2 << kRecentSetBits> recent_ = {};
};

}  // namespace segd
