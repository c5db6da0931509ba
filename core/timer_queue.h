#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace segd {

// The moments at which profiles must be re-evaluated because time passed: a min-queue
// of (due time, slot). Entries are never removed early; the owner keeps each slot's
// live due time and ignores popped entries that no longer match it (lazy deletion).
//
// It holds about one entry per profile with a time-dependent membership (1.2 per
// profile under the standard segments), so its size is part of a shard's memory per
// profile: an entry is packed in 12 bytes instead of 16.
//
// Thread safety: none; owned by one shard.
class TimerQueue {
 public:
  void Push(int64_t due, uint32_t slot) {
    heap_.push_back(Entry{due, slot});
    std::push_heap(heap_.begin(), heap_.end(), Later);
  }

  // Pops the earliest entry due at or before `now`; false when there is none.
  bool PopDue(int64_t now, int64_t* due, uint32_t* slot) {
    if (heap_.empty() || heap_.front().due > now) return false;
    *due = heap_.front().due;
    *slot = heap_.front().slot;
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    heap_.pop_back();
    return true;
  }

  size_t size() const { return heap_.size(); }
  // The entries held (an estimate: the vector's capacity beyond the most it ever held
  // was never written, so it is not resident).
  size_t MemoryBytes() const { return heap_.size() * sizeof(Entry); }

 private:
  struct [[gnu::packed]] Entry {
    int64_t due;
    uint32_t slot;
  };
  static_assert(sizeof(Entry) == 12);

  // The heap's order: std::*_heap keep the greatest first, so "greater" is "due later".
  static bool Later(const Entry& a, const Entry& b) {
    const int64_t a_due = a.due, b_due = b.due;
    return a_due != b_due ? a_due > b_due : a.slot > b.slot;
  }

  std::vector<Entry> heap_;
};

}  // namespace segd
