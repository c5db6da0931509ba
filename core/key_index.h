#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/prefetch.h"
#include "core/text.h"

namespace segd {

// The profile key index of a shard: key → slot, for keys that live elsewhere (in the
// profile blobs). An open-addressing table with linear probing whose entries are 8
// bytes — the slot and 32 bits of the key's hash (its tag) — so a lookup reads one
// cache line of entries and compares the stored key only where the tag matches (a
// false tag match costs one extra key comparison, about once in 4 billion probes).
// The table grows by half when it is 3/4 full, so it is always between 1/2 and 3/4 full
// (doubling would leave it between 3/8 and 3/4, a third more bytes per key on average).
//
// The split into Hash / PrefetchBucket / Candidate / Find lets a batch resolve keys in
// a software pipeline: prefetch the entries of a key several updates ahead, then (when
// they have arrived) the candidate slot's profile, then look it up for real.
//
// `KeyOf` maps a slot to its key: `std::string_view operator()(uint32_t slot) const`.
//
// Thread safety: none (one shard's thread).
template <typename KeyOf>
class KeyIndex {
 public:
  using Slot = uint32_t;

  explicit KeyIndex(KeyOf key_of) : key_of_(key_of) {}

  static uint64_t Hash(std::string_view key) { return HashString(key); }

  size_t size() const { return size_; }
  size_t MemoryBytes() const { return entries_.capacity() * sizeof(uint64_t); }

  // Starts loading the entries a lookup of `hash` reads first.
  void PrefetchBucket(uint64_t hash) const {
    if (!entries_.empty()) PrefetchLine(&entries_[Home(hash)]);
  }

  // The first slot whose tag matches `hash`, without comparing keys: almost always the
  // slot Find will return, if the key is present. For prefetching only.
  std::optional<Slot> Candidate(uint64_t hash) const {
    if (entries_.empty()) return std::nullopt;
    const uint32_t tag = Tag(hash);
    for (size_t i = Home(hash);; i = Next(i)) {
      const uint64_t e = entries_[i];
      if (e == kEmpty) return std::nullopt;
      if (TagOf(e) == tag) return SlotOf(e);
    }
  }

  // REQUIRES: hash == Hash(key).
  std::optional<Slot> Find(std::string_view key, uint64_t hash) const {
    if (entries_.empty()) return std::nullopt;
    const uint32_t tag = Tag(hash);
    for (size_t i = Home(hash);; i = Next(i)) {
      const uint64_t e = entries_[i];
      if (e == kEmpty) return std::nullopt;
      if (TagOf(e) == tag && SameString(key_of_(SlotOf(e)), key)) return SlotOf(e);
    }
  }

  // Adds `slot`, whose key (key_of(slot)) hashes to `hash` and is not in the index.
  void Insert(Slot slot, uint64_t hash) {
    if ((size_ + 1) * 4 > entries_.size() * 3) Grow();
    Place(Entry(slot, hash));
    ++size_;
  }

  // Removes `slot`, whose key hashes to `hash`. REQUIRES: slot is in the index.
  void Erase(Slot slot, uint64_t hash) {
    size_t i = Home(hash);
    while (entries_[i] == kEmpty || SlotOf(entries_[i]) != slot) i = Next(i);
    // Backward-shift deletion: move later entries of the run into the hole when their
    // home bucket allows, so that no lookup ever needs a tombstone.
    for (size_t j = Next(i);; j = Next(j)) {
      const uint64_t e = entries_[j];
      if (e == kEmpty) break;
      const size_t home = HomeOfTag(TagOf(e));
      // e may move to i if its home is not in the cyclic range (i, j].
      const bool home_in_range = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!home_in_range) {
        entries_[i] = e;
        i = j;
      }
    }
    entries_[i] = kEmpty;
    --size_;
  }

 private:
  // An entry: tag in the high 32 bits, slot + 1 in the low 32 (0 = empty).
  static constexpr uint64_t kEmpty = 0;
  static constexpr size_t kMinEntries = 16;

  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
  static uint32_t TagOf(uint64_t e) { return static_cast<uint32_t>(e >> 32); }
  static Slot SlotOf(uint64_t e) { return static_cast<Slot>(e) - 1; }
  static uint64_t Entry(Slot slot, uint64_t hash) {
    return (uint64_t{Tag(hash)} << 32) | (uint64_t{slot} + 1);
  }
  // The home bucket is the tag scaled to the table (tag × entries / 2^32), so it can be
  // recomputed from an entry alone (Erase, Grow) without reading its key, and it keeps
  // the tags' order.
  size_t HomeOfTag(uint32_t tag) const { return (uint64_t{tag} * entries_.size()) >> 32; }
  size_t Home(uint64_t hash) const { return HomeOfTag(Tag(hash)); }
  size_t Next(size_t i) const { return i + 1 == entries_.size() ? 0 : i + 1; }

  void Place(uint64_t e) {
    size_t i = HomeOfTag(TagOf(e));
    while (entries_[i] != kEmpty) i = Next(i);
    entries_[i] = e;
  }

  void Grow() {
    std::vector<uint64_t> old = std::move(entries_);
    entries_.assign(old.empty() ? kMinEntries : old.size() + old.size() / 2, kEmpty);
    for (uint64_t e : old) {
      if (e != kEmpty) Place(e);
    }
  }

  KeyOf key_of_;
  std::vector<uint64_t> entries_;
  size_t size_ = 0;
};

}  // namespace segd
