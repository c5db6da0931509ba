#include "core/interner.h"

#include <algorithm>
#include <utility>

namespace segd {

uint32_t Interner::InternInTable(std::string_view s) {
  const size_t hash = Hash(s);
  if (const uint32_t id1 = FindId1(s, hash)) return id1 - 1;
  const std::string& stored = storage_.emplace_back(s);
  const auto id = static_cast<uint32_t>(strings_.size());
  strings_.push_back(stored);
  Slot slot = KeyOf(stored);
  slot.id1 = id + 1;
  Insert(slot, hash);
  return id;
}

uint32_t Interner::InternAfterMiss(std::string_view s, const Slot& key, Slot* set) {
  if (SameKey(set[1], key)) {
    std::swap(set[0], set[1]);
    return set[0].id1 - 1;
  }
  const uint32_t id = InternInTable(s);
  set[1] = set[0];  // the less recent of the two goes
  set[0] = key;
  set[0].id1 = id + 1;
  return id;
}

uint32_t Interner::FindId1(std::string_view s, size_t hash) const {
  if (slots_.empty()) return 0;
  const Slot key = KeyOf(s);
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.id1 == 0) return 0;
    if (SameKey(slot, key) && (s.size() <= kMaxWordsSize || strings_[slot.id1 - 1] == s)) {
      return slot.id1;
    }
  }
}

void Interner::Insert(Slot slot, size_t hash) {
  if (2 * (strings_.size() + 1) > slots_.size()) Grow();
  Place(slot, hash);
}

void Interner::Place(Slot slot, size_t hash) {
  size_t i = hash & mask_;
  while (slots_[i].id1 != 0) i = (i + 1) & mask_;
  slots_[i] = slot;
}

void Interner::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(16, 2 * old.size()), Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.id1 != 0) Place(slot, Hash(strings_[slot.id1 - 1]));
  }
}

size_t Interner::MemoryBytes() const {
  // Short strings live inside std::string (SSO); longer ones own a heap buffer.
  constexpr size_t kSsoCapacity = std::string().capacity();
  size_t bytes = storage_.size() * sizeof(std::string);
  for (const std::string& s : storage_) {
    if (s.capacity() > kSsoCapacity) bytes += s.capacity() + 1;
  }
  bytes += strings_.capacity() * sizeof(std::string_view);
  bytes += slots_.capacity() * sizeof(Slot);
  return bytes;
}

}  // namespace segd
