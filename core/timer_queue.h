#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

namespace segd {

// The moments at which profiles must be re-evaluated because time passed: a min-queue
// of (due time, slot). Entries are never removed early; the owner keeps each slot's
// live due time and ignores popped entries that no longer match it (lazy deletion).
//
// Thread safety: none; owned by one shard.
class TimerQueue {
 public:
  void Push(int64_t due, uint32_t slot) { heap_.push(Entry{due, slot}); }

  // Pops the earliest entry due at or before `now`; false when there is none.
  bool PopDue(int64_t now, int64_t* due, uint32_t* slot) {
    if (heap_.empty() || heap_.top().due > now) return false;
    *due = heap_.top().due;
    *slot = heap_.top().slot;
    heap_.pop();
    return true;
  }

  size_t size() const { return heap_.size(); }
  size_t MemoryBytes() const { return heap_.size() * sizeof(Entry); }

 private:
  struct Entry {
    int64_t due;
    uint32_t slot;
    bool operator>(const Entry& o) const { return due != o.due ? due > o.due : slot > o.slot; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
};

}  // namespace segd
