#include "core/interner.h"

#include <utility>

namespace segd {

uint32_t Interner::InternAfterMiss(std::string_view s, uint32_t* set) {
  if (set[1] != 0 && SameString(strings_[set[1] - 1], s)) {
    std::swap(set[0], set[1]);
    return set[0] - 1;
  }
  uint32_t id;
  const size_t hash = Hash(s);
  if (auto it = ids_.find(s, hash); it != ids_.end()) {
    id = it->second;
  } else {
    const std::string& stored = storage_.emplace_back(s);
    id = static_cast<uint32_t>(strings_.size());
    strings_.push_back(stored);
    ids_.emplace(stored, id);
  }
  set[1] = set[0];  // the less recent of the two goes
  set[0] = id + 1;
  return id;
}

std::optional<uint32_t> Interner::Find(std::string_view s) const { return Find(s, Hash(s)); }

std::optional<uint32_t> Interner::Find(std::string_view s, size_t hash) const {
  if (auto it = ids_.find(s, hash); it != ids_.end()) return it->second;
  return std::nullopt;
}

size_t Interner::MemoryBytes() const {
  // Short strings live inside std::string (SSO); longer ones own a heap buffer.
  constexpr size_t kSsoCapacity = std::string().capacity();
  size_t bytes = storage_.size() * sizeof(std::string);
  for (const std::string& s : storage_) {
    if (s.capacity() > kSsoCapacity) bytes += 2 * (s.capacity() + 1);  // and its key copy
  }
  bytes += strings_.capacity() * sizeof(std::string_view);
  bytes += ids_.capacity() * (sizeof(std::pair<std::string, uint32_t>) + 1);
  return bytes;
}

}  // namespace segd
