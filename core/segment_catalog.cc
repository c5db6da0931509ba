#include "core/segment_catalog.h"

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace segd {
namespace {

constexpr size_t kMaxSegmentIdBytes = 128;
constexpr size_t kMaxDescriptionBytes = 4096;

bool IsSegmentIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// The position of the first in_segment(`id`) call in the rule.
Position ReferencePosition(const Expr& rule, std::string_view id) {
  Position pos = rule.pos;
  bool found = false;
  VisitExprs(const_cast<Expr&>(rule), [&](Expr& e) {
    if (!found && e.kind == ExprKind::kInSegment && e.segment == id) {
      pos = e.pos;
      found = true;
    }
  });
  return pos;
}

absl::Status RuleError(Position pos, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(pos.line, ":", pos.column, ": ", AsAbsl(message)));
}

}  // namespace

absl::Status ValidateSegmentId(std::string_view id) {
  if (id.empty() || id.size() > kMaxSegmentIdBytes ||
      !std::all_of(id.begin(), id.end(), IsSegmentIdChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment id: must be 1-128 characters of [A-Za-z0-9_.-], got '",
                     AsAbsl(id.substr(0, 140)), "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const SegmentDef>> SegmentCatalog::Prepare(const SegmentSpec& spec,
                                                                          int64_t now) const {
  if (absl::Status s = ValidateSegmentId(spec.id); !s.ok()) return s;
  if (spec.description.size() > kMaxDescriptionBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("description: longer than ", kMaxDescriptionBytes, " bytes"));
  }
  absl::StatusOr<std::unique_ptr<Expr>> rule = ParseRule(spec.rule);
  if (!rule.ok()) return rule.status();

  auto def = std::make_shared<SegmentDef>();
  def->id = spec.id;
  def->rule_text = spec.rule;
  def->description = spec.description;
  def->updated_at = now;
  def->info = CollectRuleInfo(**rule);

  // References must name existing segments, and must not lead back to this one.
  std::vector<std::string> refs(def->info.segments.begin(), def->info.segments.end());
  std::sort(refs.begin(), refs.end());
  for (const std::string& ref : refs) {
    const Position pos = ReferencePosition(**rule, ref);
    if (ref == spec.id) {
      return RuleError(pos, absl::StrCat("segment '", ref, "' cannot reference itself"));
    }
    if (!by_id_.contains(ref)) return RuleError(pos, absl::StrCat("unknown segment '", ref, "'"));
    // Depth-first search for a path ref -> ... -> spec.id through existing rules.
    std::vector<std::string> path = {spec.id, ref};
    absl::flat_hash_set<std::string> seen;
    std::function<bool(const std::string&)> reaches = [&](const std::string& from) {
      if (!seen.insert(from).second) return false;
      auto it = by_id_.find(from);
      if (it == by_id_.end()) return false;
      std::vector<std::string> next(it->second->info.segments.begin(),
                                    it->second->info.segments.end());
      std::sort(next.begin(), next.end());
      for (const std::string& n : next) {
        path.push_back(n);
        if (n == spec.id || reaches(n)) return true;
        path.pop_back();
      }
      return false;
    };
    if (reaches(ref)) {
      return RuleError(pos, absl::StrCat("in_segment(\"", ref,
                                         "\") makes a cycle: ", absl::StrJoin(path, " -> ")));
    }
  }

  auto existing = by_id_.find(spec.id);
  if (existing != by_id_.end()) {
    def->slot = existing->second->slot;
  } else {
    if (by_id_.size() >= max_segments_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("segment limit reached: ", max_segments_, " segments (--max-segments)"));
    }
    def->slot = static_cast<uint32_t>(std::find(slot_used_.begin(), slot_used_.end(), false) -
                                      slot_used_.begin());
  }
  def->rule = std::move(*rule);
  return std::shared_ptr<const SegmentDef>(std::move(def));
}

std::shared_ptr<const SegmentDef> SegmentCatalog::Commit(std::shared_ptr<const SegmentDef> def) {
  if (def->slot >= slot_used_.size()) slot_used_.resize(def->slot + 1, false);
  slot_used_[def->slot] = true;
  by_id_[def->id] = def;
  Reorder();
  return def;
}

absl::Status SegmentCatalog::CheckDelete(std::string_view id) const {
  if (!by_id_.contains(id))
    return absl::NotFoundError(absl::StrCat("segment '", AsAbsl(id), "' not found"));
  std::vector<std::string> users;
  for (const auto& [other, def] : by_id_) {
    if (def->info.segments.contains(std::string(id))) users.push_back(other);
  }
  if (!users.empty()) {
    std::sort(users.begin(), users.end());
    return absl::FailedPreconditionError(absl::StrCat(
        "segment '", AsAbsl(id), "' is referenced by in_segment in: ", absl::StrJoin(users, ", ")));
  }
  return absl::OkStatus();
}

void SegmentCatalog::Erase(std::string_view id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  slot_used_[it->second->slot] = false;
  by_id_.erase(it);
  Reorder();
}

std::shared_ptr<const SegmentDef> SegmentCatalog::Find(std::string_view id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

// Depth-first topological order, visiting ids in sorted order so that the order is
// the same on every run.
void SegmentCatalog::Reorder() {
  std::vector<std::string> ids;
  ids.reserve(by_id_.size());
  for (const auto& [id, def] : by_id_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  order_.clear();
  absl::flat_hash_set<std::string> done;
  std::function<void(const std::string&)> visit = [&](const std::string& id) {
    if (!done.insert(id).second) return;
    const auto& def = by_id_.at(id);
    std::vector<std::string> refs(def->info.segments.begin(), def->info.segments.end());
    std::sort(refs.begin(), refs.end());
    for (const std::string& r : refs) {
      if (by_id_.contains(r)) visit(r);
    }
    order_.push_back(def);
  };
  for (const std::string& id : ids) visit(id);
}

}  // namespace segd
