#pragma once

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

  uint32_t Intern(std::string_view s);
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
  std::deque<std::string> storage_;  // stable addresses
  std::vector<std::string_view> strings_;
  // Keyed by a copy of each string rather than a view of storage_: a short string
  // (most names and interned values) sits inside its slot, so a lookup compares the
  // bytes it has already loaded instead of missing the cache once more.
  StringMap<uint32_t> ids_;
};

}  // namespace segd
