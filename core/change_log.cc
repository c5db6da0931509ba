#include "core/change_log.h"

#include <algorithm>
#include <cassert>
#include <limits>

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
      if (pages_.empty() || pages_.back().entries.size() == kPageSize) {
        if (!pages_.empty()) pages_.back().keys.shrink_to_fit();
        pages_.emplace_back().entries.reserve(kPageSize);
      }
      Page& page = pages_.back();
      assert(c.key.size() <= std::numeric_limits<uint16_t>::max());
      page.entries.push_back(Entry{c.time, static_cast<uint32_t>(page.keys.size()),
                                   SegmentRef(c.segment), static_cast<uint16_t>(c.key.size()),
                                   c.kind, c.cause});
      page.keys.append(c.key);
      ++end_;
    }
    while (pages_.size() > 1 && first_ + kPageSize <= Begin()) {
      pages_.pop_front();
      first_ += kPageSize;
    }
  }
  if (listener_) listener_();
}

uint64_t ChangeLog::Begin() const { return std::max(first_, end_ - std::min(end_, capacity_)); }

uint64_t ChangeLog::end() const {
  absl::MutexLock lock(&mu_);
  return end_;
}

uint64_t ChangeLog::begin() const {
  absl::MutexLock lock(&mu_);
  return Begin();
}

absl::StatusOr<uint64_t> ChangeLog::Read(uint64_t from, size_t max, const StringSet* segments,
                                         std::vector<Change>* out) const {
  return Read(from, max, segments, [out](const ChangeView& c) { out->push_back(c.ToChange()); });
}

absl::StatusOr<uint64_t> ChangeLog::Read(uint64_t from, size_t max, const StringSet* segments,
                                         absl::FunctionRef<void(const ChangeView&)> visit) const {
  absl::MutexLock lock(&mu_);
  const uint64_t begin = Begin();
  if (from < begin) {
    return absl::OutOfRangeError(absl::StrCat(
        "cursor position ", from, " is older than the change log, which starts at ", begin));
  }
  if (from > end_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cursor position ", from, " is past the end of the change log (", end_, ")"));
  }
  uint64_t pos = from;
  for (; pos < end_ && pos - from < max; ++pos) {
    const Page& page = pages_[(pos - first_) / kPageSize];
    const Entry& e = page.entries[(pos - first_) % kPageSize];
    const std::string& segment = segment_ids_[e.segment];
    if (segments != nullptr && !segments->contains(segment)) continue;
    visit(ChangeView(std::string_view(page.keys).substr(e.key_begin, e.key_size), segment, e.kind,
                     e.time, e.cause));
  }
  return pos;
}

}  // namespace segd
