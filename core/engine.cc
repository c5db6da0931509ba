#include "core/engine.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/text.h"

namespace segd {
namespace {

uint64_t NewIncarnation() {
  std::random_device rd;
  const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return r == 0 ? 1 : r;
}

}  // namespace

Engine::Engine(const EngineOptions& options, int num_shards, Clock& clock)
    : options_(options), clock_(clock), incarnation_(NewIncarnation()),
      catalog_(options.max_segments) {
  const int n = std::max(1, num_shards);
  shards_.reserve(n);
  for (int i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>(i, options_));
  Tick();
}

Engine::~Engine() = default;

int Engine::ShardOf(std::string_view key) const {
  if (shards_.size() == 1) return 0;
  return static_cast<int>(std::hash<std::string_view>{}(key) % shards_.size());
}

void Engine::FlushAll() {
  for (auto& s : shards_) s->Flush();
}

void Engine::Tick() {
  const int64_t now = Now();
  for (auto& s : shards_) s->AdvanceTo(now);
  FlushAll();
}

absl::Status Engine::SetTime(int64_t now_ms) {
  auto* manual = dynamic_cast<ManualClock*>(&clock_);
  if (manual == nullptr) {
    return absl::FailedPreconditionError("SetTime needs the manual clock (--clock=manual)");
  }
  const int64_t current = shards_[0]->now();
  if (now_ms < current) {
    return absl::FailedPreconditionError(
        absl::StrCat("SetTime cannot move the clock back, from ", current, " to ", now_ms));
  }
  manual->Set(now_ms);
  Tick();
  return absl::OkStatus();
}

BatchResult Engine::Apply(std::span<const ProfileUpdate> updates) {
  Tick();
  BatchResult result;
  // Profiles are scattered over memory: look a few updates ahead so that their cache
  // misses overlap with the work on this one.
  constexpr size_t kLookahead = 4;
  for (size_t i = 0; i < std::min(kLookahead, updates.size()); ++i) {
    shards_[ShardOf(updates[i].key)]->Prefetch(updates[i].key);
  }
  for (size_t i = 0; i < updates.size(); ++i) {
    if (i + kLookahead < updates.size()) {
      shards_[ShardOf(updates[i + kLookahead].key)]->Prefetch(updates[i + kLookahead].key);
    }
    const ProfileUpdate& u = updates[i];
    absl::Status s = shards_[ShardOf(u.key)]->Apply(u);
    if (s.ok()) {
      ++result.applied;
    } else {
      result.errors.push_back(UpdateError{static_cast<uint32_t>(i), u.key, std::string(s.message())});
    }
  }
  FlushAll();
  return result;
}

ReplayResult Engine::Replay(std::span<const ProfileData> profiles, bool quiet) {
  Tick();
  ReplayResult result;
  for (size_t i = 0; i < profiles.size(); ++i) {
    absl::StatusOr<uint64_t> events = shards_[ShardOf(profiles[i].key)]->Replay(profiles[i], quiet);
    if (events.ok()) {
      ++result.profiles;
      result.events += *events;
    } else {
      result.errors.push_back(UpdateError{static_cast<uint32_t>(i), profiles[i].key,
                                          std::string(events.status().message())});
    }
  }
  FlushAll();
  return result;
}

absl::StatusOr<PutSegmentResult> Engine::PutSegment(const SegmentSpec& spec, bool dry_run) {
  Tick();
  absl::StatusOr<std::shared_ptr<const SegmentDef>> def = catalog_.Prepare(spec, Now());
  if (!def.ok()) return def.status();
  if (!dry_run) catalog_.Commit(*def);
  PutSegmentResult result;
  uint64_t members = 0;
  for (auto& shard : shards_) {
    const SegmentDiff diff =
        dry_run ? shard->DryRunSegment(**def, catalog_) : shard->PutSegment(*def, catalog_);
    result.entered += diff.entered;
    result.exited += diff.exited;
    members += diff.members;
  }
  FlushAll();
  result.segment = SegmentInfo{(*def)->id, (*def)->rule_text, (*def)->description, members,
                               (*def)->updated_at};
  return result;
}

absl::StatusOr<uint64_t> Engine::DeleteSegment(std::string_view id) {
  Tick();
  if (absl::Status s = catalog_.CheckDelete(id); !s.ok()) return s;
  std::shared_ptr<const SegmentDef> def = catalog_.Find(id);
  catalog_.Erase(id);
  uint64_t exited = 0;
  for (auto& shard : shards_) exited += shard->DeleteSegment(*def, catalog_);
  FlushAll();
  return exited;
}

absl::StatusOr<SegmentInfo> Engine::GetSegment(std::string_view id) const {
  std::shared_ptr<const SegmentDef> def = catalog_.Find(id);
  if (def == nullptr) return absl::NotFoundError(absl::StrCat("segment '", AsAbsl(id), "' not found"));
  uint64_t members = 0;
  for (const auto& shard : shards_) members += shard->MemberCount(def->slot);
  return SegmentInfo{def->id, def->rule_text, def->description, members, def->updated_at};
}

std::vector<SegmentInfo> Engine::ListSegments() const {
  std::vector<SegmentInfo> out;
  for (const auto& def : catalog_.order()) out.push_back(*GetSegment(def->id));
  std::sort(out.begin(), out.end(),
            [](const SegmentInfo& a, const SegmentInfo& b) { return a.id < b.id; });
  return out;
}

absl::StatusOr<ProfileData> Engine::GetProfile(std::string_view key) {
  Tick();
  std::optional<ProfileData> p = shards_[ShardOf(key)]->GetProfile(key);
  if (!p) return absl::NotFoundError(absl::StrCat("profile '", AsAbsl(key), "' not found"));
  return std::move(*p);
}

absl::StatusOr<std::vector<std::string>> Engine::Members(std::string_view segment) {
  Tick();
  std::shared_ptr<const SegmentDef> def = catalog_.Find(segment);
  if (def == nullptr) return absl::NotFoundError(absl::StrCat("segment '", AsAbsl(segment), "' not found"));
  std::vector<std::string> keys;
  for (auto& shard : shards_) shard->Members(def->slot, &keys);
  return keys;
}

// An ad-hoc rule may reference stored segments; unknown ones are an error.
static absl::StatusOr<std::unique_ptr<Expr>> ParseQueryRule(std::string_view text,
                                                            const SegmentCatalog& catalog) {
  absl::StatusOr<std::unique_ptr<Expr>> rule = ParseRule(text);
  if (!rule.ok()) return rule.status();
  absl::Status error;
  VisitExprs(**rule, [&](Expr& e) {
    if (error.ok() && e.kind == ExprKind::kInSegment && catalog.Find(e.segment) == nullptr) {
      error = absl::InvalidArgumentError(
          absl::StrCat(e.pos.line, ":", e.pos.column, ": unknown segment '", e.segment, "'"));
    }
  });
  if (!error.ok()) return error;
  return rule;
}

absl::StatusOr<CountResult> Engine::Count(std::string_view rule_text) {
  Tick();
  absl::StatusOr<std::unique_ptr<Expr>> rule = ParseQueryRule(rule_text, catalog_);
  if (!rule.ok()) return rule.status();
  CountResult result;
  for (auto& shard : shards_) shard->Count(**rule, catalog_, &result.matched, &result.total);
  return result;
}

absl::StatusOr<FunnelResult> Engine::Funnel(std::span<const std::string> steps,
                                            int64_t within_ms) {
  if (within_ms < 0) {
    return absl::InvalidArgumentError(absl::StrCat("within_ms: must be >= 0, got ", within_ms));
  }
  if (steps.empty()) return absl::InvalidArgumentError("steps: a funnel needs at least one step");
  std::vector<Selector> selectors;
  for (size_t i = 0; i < steps.size(); ++i) {
    absl::StatusOr<Selector> s = ParseFunnelStep(steps[i]);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("steps[", i, "]: ", s.status().message()));
    }
    selectors.push_back(std::move(*s));
  }
  Tick();
  FunnelResult result;
  result.counts.assign(steps.size(), 0);
  for (auto& shard : shards_) {
    shard->Funnel(selectors, within_ms == 0 ? -1 : within_ms, &result.counts, &result.total,
                  &result.events_scanned);
  }
  return result;
}

absl::StatusOr<ExplainResult> Engine::Explain(std::string_view key, std::string_view segment,
                                              std::string_view rule_text) {
  if (segment.empty() == rule_text.empty()) {
    return absl::InvalidArgumentError("explain: give exactly one of segment and rule");
  }
  std::string text(rule_text);
  if (!segment.empty()) {
    std::shared_ptr<const SegmentDef> def = catalog_.Find(segment);
    if (def == nullptr) return absl::NotFoundError(absl::StrCat("segment '", AsAbsl(segment), "' not found"));
    text = def->rule_text;
  }
  absl::StatusOr<std::unique_ptr<Expr>> rule = ParseQueryRule(text, catalog_);
  if (!rule.ok()) return rule.status();
  Tick();
  std::optional<ExplainResult> r = shards_[ShardOf(key)]->Explain(key, **rule, catalog_);
  if (!r) return absl::NotFoundError(absl::StrCat("profile '", AsAbsl(key), "' not found"));
  return std::move(*r);
}

void Engine::ForEachProfile(const std::function<void(ProfileData&&)>& f) {
  Tick();
  for (auto& shard : shards_) shard->ForEachProfile(f);
}

Cursor Engine::CurrentCursor() const {
  Cursor c;
  c.incarnation = incarnation_;
  for (const auto& shard : shards_) c.positions.push_back(shard->changes().end());
  return c;
}

Snapshot Engine::TakeSnapshot(const absl::flat_hash_set<std::string>* segments) {
  Tick();
  Snapshot snap;
  for (auto& shard : shards_) shard->SnapshotMembers(segments, &snap.members);
  snap.cursor = CurrentCursor();
  return snap;
}

absl::Status Engine::ReadChanges(Cursor* cursor, size_t max,
                                 const absl::flat_hash_set<std::string>* segments,
                                 std::vector<Change>* out) const {
  if (cursor->incarnation != incarnation_) {
    return absl::OutOfRangeError(
        "cursor is from another server incarnation; re-subscribe with snapshot");
  }
  if (cursor->positions.size() != shards_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cursor has ", cursor->positions.size(),
                                                   " shard positions, this server has ",
                                                   shards_.size()));
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    absl::StatusOr<uint64_t> next =
        shards_[i]->changes().Read(cursor->positions[i], max, segments, out);
    if (!next.ok()) return next.status();
    cursor->positions[i] = *next;
  }
  return absl::OkStatus();
}

EngineStats Engine::Stats() const {
  EngineStats s;
  s.segments = static_cast<uint32_t>(catalog_.size());
  s.incarnation = incarnation_;
  s.now = shards_[0]->now();
  for (const auto& shard : shards_) {
    const ShardStats st = shard->Stats();
    s.profiles += st.profiles;
    s.events += st.events;
    s.updates_applied += st.updates_applied;
    s.changes_emitted += st.changes_emitted;
    s.memory_bytes += st.memory_bytes;
  }
  return s;
}

}  // namespace segd
