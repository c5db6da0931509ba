#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/prefetch.h"
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

  // Checks a small cache of the strings it returned last before the table: a store interns
  // the same few dozen names over and over (~70 for each replayed profile). A string of up
  // to 16 bytes (almost every name) is compared with the words of its cache entry, without
  // loading the stored string.
  uint32_t Intern(std::string_view s) {
    if (s.size() > kMaxWordsSize) return InternInTable(s);
    const Slot key = KeyOf(s);
    Slot* set = &recent_[2 * RecentSet(key)];
    if (SameKey(set[0], key)) return set[0].id1 - 1;
    return InternAfterMiss(s, key, set);
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
    PrefetchLine(&slots_[i]);
    PrefetchLine(&slots_[(i + 1) & mask_]);
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
  // Strings of up to this many bytes are told apart by their words (WordsOf) and size.
  static constexpr size_t kMaxWordsSize = 16;
  // The cache: 64 sets of two ways.
  static constexpr int kRecentSetBits = 6;
  // Intern by the table alone: for a string longer than kMaxWordsSize (not cached), and
  // for one in neither way of its cache set.
  uint32_t InternInTable(std::string_view s);
  struct Slot;
  // Intern, when `s` (whose KeyOf is `key`) is not in the first way of its cache set.
  uint32_t InternAfterMiss(std::string_view s, const Slot& key, Slot* set);
  // A string in the table: its words (text_internal::WordsOf), size and id + 1 (0: an
  // empty slot). A string of up to 16 bytes (most names and interned values) is compared
  // within its slot, with no second cache miss; a longer one is compared in storage_
  // when its words match.
  struct Slot {
    text_internal::Words words = {0, 0};
    uint32_t size = 0;
    uint32_t id1 = 0;
  };
  // A slot of `s` (id1 left 0) for comparing and hashing.
  static Slot KeyOf(std::string_view s) {
    return Slot{text_internal::WordsOf(s), static_cast<uint32_t>(s.size()), 0};
  }
  // Whether two slots hold the same words and size: the same string, if it is at most
  // kMaxWordsSize bytes long.
  static bool SameKey(const Slot& a, const Slot& b) {
    return a.words == b.words && a.size == b.size;
  }
  static size_t RecentSet(const Slot& key) {
    const uint64_t mixed = (key.words.w0 ^ key.words.w1 << 1 ^ key.size) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(mixed >> (64 - kRecentSetBits));
  }
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
  // By RecentSet, two ways each: strings Intern returned, as table slots; an empty way has
  // a size no cached string has.
  std::array<Slot, 2 << kRecentSetBits> recent_ = MakeRecent();
  static std::array<Slot, 2 << kRecentSetBits> MakeRecent() {
    std::array<Slot, 2 << kRecentSetBits> ways;
    ways.fill(Slot{{0, 0}, kMaxWordsSize + 1, 0});
    return ways;
  }
};

}  // namespace segd
