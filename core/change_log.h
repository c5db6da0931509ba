#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/change.h"
#include "core/text.h"

namespace segd {

// The bounded log of one shard's membership changes (SPEC §4). Every change gets the
// next sequence number; the log keeps the newest `capacity` of them. A reader holds a
// position (the sequence number of the next change it wants) and reads on from it;
// a position older than the oldest change kept is out of range.
//
// Thread safety: thread-safe. One writer (the shard) appends; any number of readers
// read concurrently. Appends take the lock once per call.
class ChangeLog {
 public:
  explicit ChangeLog(uint64_t capacity);
  ChangeLog(const ChangeLog&) = delete;
  ChangeLog& operator=(const ChangeLog&) = delete;

  void Append(std::span<const Change> changes);

  // `listener` runs after every Append that added changes, on the appending thread,
  // outside the log's lock. It must be quick and must not append. Set it before the
  // log is shared.
  void SetListener(std::function<void()> listener) { listener_ = std::move(listener); }

  // The position after the newest change: where a reader starting "now" begins.
  uint64_t end() const;
  // The position of the oldest change still held.
  uint64_t begin() const;

  // Appends to `out` the changes from position `from` on, at most `max` of them,
  // skipping those whose segment is not in `segments` (null: all segments); skipped
  // changes count toward `max` as read. Returns the position after the last change
  // read. OUT_OF_RANGE if `from` is older than begin(); INVALID_ARGUMENT if past end().
  absl::StatusOr<uint64_t> Read(uint64_t from, size_t max, const StringSet* segments,
                                std::vector<Change>* out) const;
  // The same, calling visit(change) for each change instead, under the log's lock (the
  // views are valid during the call only; visit must be quick and must not touch the
  // log). Nothing is visited on an error.
  absl::StatusOr<uint64_t> Read(uint64_t from, size_t max, const StringSet* segments,
                                absl::FunctionRef<void(const ChangeView&)> visit) const;

  uint64_t capacity() const { return capacity_; }

 private:
  // The changes are held in pages of kPageSize, all full but the last; a page is
  // dropped once all its changes are older than the newest `capacity`. A change costs
  // 24 bytes and its key's bytes (a std::string key alone was 32 bytes, and a heap
  // block for a key of more than 15), and its segment id is interned in segment_ids_.
  struct Entry {
    int64_t time;
    uint32_t key_begin;  // in the page's keys
    uint32_t segment;    // in segment_ids_
    uint16_t key_size;
    ChangeKind kind;
    Cause cause;
  };
  struct Page {
    std::vector<Entry> entries;
    std::string keys;
  };
  static constexpr uint64_t kPageSize = 4096;

  uint32_t SegmentRef(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t Begin() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t capacity_;
  std::function<void()> listener_;
  mutable absl::Mutex mu_;
  std::deque<Page> pages_ ABSL_GUARDED_BY(mu_);
  uint64_t first_ ABSL_GUARDED_BY(mu_) = 0;  // position of pages_.front()'s first change
  uint64_t end_ ABSL_GUARDED_BY(mu_) = 0;    // position after the newest change
  std::vector<std::string> segment_ids_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> segment_refs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segd
