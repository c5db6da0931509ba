#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace segd::load {

// For each key u{n}, the latency origin (MonoNs) of the last update sent for it: how a
// change arriving at a subscriber is matched to the update that caused it. Updates are
// not tagged on the wire, so a change is charged to the latest update of its key; when two
// updates of one key are in flight at once (rare with many keys), a change of the earlier
// one is measured from the later send and comes out a little short.
//
// Thread safety: Mark and Get may run concurrently from any threads.
class SendTimes {
 public:
  explicit SendTimes(uint64_t keys) : keys_(keys), ns_(new std::atomic<int64_t>[keys]) {
    for (uint64_t i = 0; i < keys; ++i) ns_[i].store(0, std::memory_order_relaxed);
  }
  SendTimes(const SendTimes&) = delete;
  SendTimes& operator=(const SendTimes&) = delete;

  uint64_t keys() const { return keys_; }
  // REQUIRES: key < keys().
  void Mark(uint64_t key, int64_t origin_ns) {
    ns_[key].store(origin_ns, std::memory_order_relaxed);
  }
  // 0: nothing was sent for `key`. REQUIRES: key < keys().
  int64_t Get(uint64_t key) const { return ns_[key].load(std::memory_order_relaxed); }

 private:
  const uint64_t keys_;
  std::unique_ptr<std::atomic<int64_t>[]> ns_;
};

}  // namespace segd::load
