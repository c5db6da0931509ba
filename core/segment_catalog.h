#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/rule.h"
#include "core/text.h"

namespace segd {

// What a client gives to define a segment.
struct SegmentSpec {
  std::string id;
  std::string rule;
  std::string description;
};

// What a client reads back about a segment.
struct SegmentInfo {
  std::string id;
  std::string rule;
  std::string description;
  uint64_t member_count = 0;
  int64_t updated_at = 0;
};

// A checked segment definition, shared (immutable) by every shard. Shards bind their
// own copy of `rule` to their interned ids.
struct SegmentDef {
  std::string id;
  std::string rule_text;
  std::string description;
  int64_t updated_at = 0;
  std::unique_ptr<const Expr> rule;
  RuleInfo info;
  uint32_t slot = 0;  // stable index of this segment in every shard while it exists
};

// The segments of an engine: ids, rules, and the in_segment dependency DAG.
//
// Slots: every segment has a small dense slot (reused after delete) under which each
// shard keeps its membership. `order()` lists live slots so that every segment comes
// after the segments it references.
//
// Thread safety: none; changed only by the engine's segment operations.
class SegmentCatalog {
 public:
  explicit SegmentCatalog(uint32_t max_segments) : max_segments_(max_segments) {}
  SegmentCatalog& operator=(const SegmentCatalog&) = delete;

  // An immutable copy for work that runs later on shard threads (definitions are
  // shared, not copied).
  std::shared_ptr<const SegmentCatalog> Snapshot() const {
    return std::shared_ptr<const SegmentCatalog>(new SegmentCatalog(*this));
  }

  // Checks `spec` as a create-or-replace would be: id syntax, rule, references to
  // existing segments, no cycle, the segment limit. Does not change the catalog.
  absl::StatusOr<std::shared_ptr<const SegmentDef>> Prepare(const SegmentSpec& spec,
                                                            int64_t now) const;
  // Installs a prepared definition (create or replace) and returns it.
  std::shared_ptr<const SegmentDef> Commit(std::shared_ptr<const SegmentDef> def);
  // FAILED_PRECONDITION if another segment references `id`; NOT_FOUND if absent.
  absl::Status CheckDelete(std::string_view id) const;
  void Erase(std::string_view id);

  std::shared_ptr<const SegmentDef> Find(std::string_view id) const;
  // Live segments in dependency order (a segment after those it references).
  const std::vector<std::shared_ptr<const SegmentDef>>& order() const { return order_; }
  size_t size() const { return by_id_.size(); }
  // One past the highest slot in use.
  uint32_t slot_limit() const { return static_cast<uint32_t>(slot_used_.size()); }

 private:
  SegmentCatalog(const SegmentCatalog&) = default;
  void Reorder();

  uint32_t max_segments_;
  StringMap<std::shared_ptr<const SegmentDef>> by_id_;
  std::vector<std::shared_ptr<const SegmentDef>> order_;
  std::vector<bool> slot_used_;
};

absl::Status ValidateSegmentId(std::string_view id);

}  // namespace segd
