#include "core/interner.h"

#include <algorithm>
#include <utility>

namespace segd {

std::pair<uint64_t, uint64_t> Interner::Words(std::string_view s) {
  using text_internal::Load32;
  using text_internal::Load64;
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) return {Load64(p), Load64(p + n - 8)};
  if (n >= 4) return {Load32(p) | Load32(p + n - 4) << 32, 0};
  if (n > 0) {
    const auto byte = [&](size_t i) { return uint64_t{static_cast<uint8_t>(p[i])}; };
    return {byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16, 0};
  }
  return {0, 0};
}

uint32_t Interner::InternAfterMiss(std::string_view s, uint32_t* set) {
  if (set[1] != 0 && SameString(strings_[set[1] - 1], s)) {
    std::swap(set[0], set[1]);
    return set[0] - 1;
  }
  const size_t hash = Hash(s);
  std::optional<uint32_t> id = Find(s, hash);
  if (!id) {
    const std::string& stored = storage_.emplace_back(s);
    id = static_cast<uint32_t>(strings_.size());
    strings_.push_back(stored);
    const auto [w0, w1] = Words(stored);
    Insert(Slot{w0, w1, static_cast<uint32_t>(stored.size()), *id + 1}, hash);
  }
  set[1] = set[0];  // the less recent of the two goes
  set[0] = *id + 1;
  return *id;
}

std::optional<uint32_t> Interner::Find(std::string_view s) const { return Find(s, Hash(s)); }

std::optional<uint32_t> Interner::Find(std::string_view s, size_t hash) const {
  if (slots_.empty()) return std::nullopt;
  const auto [w0, w1] = Words(s);
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.id1 == 0) return std::nullopt;
    if (slot.w0 == w0 && slot.w1 == w1 && slot.size == s.size() &&
        (s.size() <= 16 || strings_[slot.id1 - 1] == s)) {
      return slot.id1 - 1;
    }
  }
}

void Interner::Insert(Slot slot, size_t hash) {
  if (2 * (strings_.size() + 1) > slots_.size()) Grow();
  size_t i = hash & mask_;
  while (slots_[i].id1 != 0) i = (i + 1) & mask_;
  slots_[i] = slot;
}

void Interner::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(16, 2 * old.size()), Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.id1 == 0) continue;
    size_t i = Hash(strings_[slot.id1 - 1]) & mask_;
    while (slots_[i].id1 != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
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
