#include "core/change_log.h"

#include "absl/strings/str_cat.h"

namespace segd {

ChangeLog::ChangeLog(uint64_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

uint32_t ChangeLog::SegmentRef(const std::string& id) {
  auto [it, inserted] = segment_refs_.try_emplace(id, segment_ids_.size());
  if (inserted) segment_ids_.push_back(id);
  return it->second;
}

void ChangeLog::Append(std::span<const Change> changes) {
  if (changes.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    for (const Change& c : changes) {
      records_.push_back(Record{c.key, c.time, SegmentRef(c.segment), c.kind, c.cause});
    }
    while (records_.size() > capacity_) {
      records_.pop_front();
      ++begin_;
    }
  }
  if (listener_) listener_();
}

uint64_t ChangeLog::end() const {
  absl::MutexLock lock(&mu_);
  return begin_ + records_.size();
}

uint64_t ChangeLog::begin() const {
  absl::MutexLock lock(&mu_);
  return begin_;
}

absl::StatusOr<uint64_t> ChangeLog::Read(uint64_t from, size_t max, const StringSet* segments,
                                         std::vector<Change>* out) const {
  absl::MutexLock lock(&mu_);
  const uint64_t end = begin_ + records_.size();
  if (from < begin_) {
    return absl::OutOfRangeError(absl::StrCat(
        "cursor position ", from, " is older than the change log, which starts at ", begin_));
  }
  if (from > end) {
    return absl::InvalidArgumentError(
        absl::StrCat("cursor position ", from, " is past the end of the change log (", end, ")"));
  }
  uint64_t pos = from;
  for (; pos < end && pos - from < max; ++pos) {
    const Record& r = records_[pos - begin_];
    const std::string& segment = segment_ids_[r.segment];
    if (segments != nullptr && !segments->contains(segment)) continue;
    out->push_back(Change{r.key, segment, r.kind, r.time, r.cause});
  }
  return pos;
}

}  // namespace segd
