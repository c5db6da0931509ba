#include "core/shard.h"

#include <algorithm>
#include <queue>

#include "absl/strings/str_cat.h"
#include "core/rule_polarity.h"

namespace segd {

struct Shard::SegmentState {
  std::shared_ptr<const SegmentDef> def;
  std::unique_ptr<Expr> rule;  // bound to this shard
  bool time_dependent = false;
  uint32_t slot = 0;
  uint64_t member_count = 0;
  std::vector<uint32_t> dependents;  // slots of segments that reference this one
  // How adding events of a type moves the rule (by interned type; any other type: the
  // polarity for every selector, which only "*" selectors can see).
  absl::flat_hash_map<uint32_t, Polarity> polarity_by_type;
  Polarity any_type_polarity = Polarity::kNone;
  // The selectors an appended event must match to change the rule (AppendedEventSelectors
  // of the bound rule), each with whether its where predicate reads now(): such a
  // predicate may match the event later, so an event of its type counts as matching.
  struct AppendedSelector {
    const Selector* selector;
    bool where_reads_now;
  };
  std::vector<AppendedSelector> appended_selectors;
  ProfileStore::LoadParts reads = ProfileStore::kAll;  // what the rule reads of a profile
};

namespace {

ProfileStore::LoadParts PartsRead(const RuleInfo& info) {
  return static_cast<ProfileStore::LoadParts>(
      (info.attributes.empty() ? 0 : ProfileStore::kAttributes) |
      (info.reads_events ? ProfileStore::kEvents : 0));
}

}  // namespace

// in_segment as seen by an evaluation of one profile: the memberships as they stand,
// including those already changed earlier in the same cascade.
class Shard::ProfileMembership final : public MembershipSource {
 public:
  ProfileMembership(const Shard& shard, Slot p) : shard_(shard), p_(p) {}
  bool IsMember(uint32_t segment_slot) const override { return shard_.IsMember(segment_slot, p_); }

 private:
  const Shard& shard_;
  Slot p_;
};

Shard::Shard(int index, const EngineOptions& options)
    : index_(index), options_(options), store_(options), log_(options.change_log_capacity) {}

Shard::~Shard() = default;

bool Shard::IsMember(uint32_t segment_slot, Slot p) const { return table_.Get(p, segment_slot); }

void Shard::SetMember(SegmentState& s, Slot p, bool member) {
  table_.Set(p, s.slot, member);
  if (member) {
    ++s.member_count;
  } else {
    --s.member_count;
  }
}

void Shard::GrowTable() {
  table_.Reserve(store_.slot_limit(), static_cast<uint32_t>(segments_.size()));
}

void Shard::Mark(uint32_t segment_slot, uint8_t reason) {
  const bool first = marked_[segment_slot] == 0;
  marked_[segment_slot] |= reason;
  if (!first) return;
  marked_ranks_.push_back(rank_[segment_slot]);
  std::push_heap(marked_ranks_.begin(), marked_ranks_.end(), std::greater<>());
}

Shard::MarkReason Shard::EventsAddedMark(const SegmentState& s, uint32_t type) {
  auto it = s.polarity_by_type.find(type);
  const Polarity p = it != s.polarity_by_type.end() ? it->second : s.any_type_polarity;
  if (p == Polarity::kUp) return kSkipIfMember;
  if (p == Polarity::kDown) return kSkipIfNotMember;
  return kEventsAdded;
}

void Shard::MarkAll() {
  for (uint32_t slot : order_) Mark(slot);
}

void Shard::MarkTimeDependent() {
  for (uint32_t slot : time_dependent_) Mark(slot);
}

void Shard::Emit(Slot p, const SegmentState& s, ChangeKind kind, int64_t time, Cause cause) {
  pending_.push_back(Change{std::string(store_.Key(p)), s.def->id, kind, time, cause});
  // A segment put (or a replay, or a tick) can change every profile's membership: its
  // changes go to the log in pieces instead of piling up here until it ends, ~80 B each
  // (40 MB for 500 K profiles entering, and the room kept afterwards).
  constexpr size_t kMaxPending = 4096;
  if (pending_.size() == kMaxPending) Flush();
}

int64_t Shard::Reevaluate(Slot p, int64_t at, Cause cause, bool quiet) {
  int64_t due = kNever;
  if (marked_ranks_.empty()) return due;
  // Decode only what the segments evaluated read; load the rest when one needs it.
  uint8_t loaded = 0;
  const ProfileMembership membership(*this, p);
  while (!marked_ranks_.empty()) {
    std::pop_heap(marked_ranks_.begin(), marked_ranks_.end(), std::greater<>());
    const uint32_t slot = order_[marked_ranks_.back()];
    marked_ranks_.pop_back();
    const uint8_t reason = marked_[slot];
    marked_[slot] = 0;
    if ((reason == kSkipIfMember && IsMember(slot, p)) ||
        (reason == kSkipIfNotMember && !IsMember(slot, p))) {
      // Only events it is monotone in were added, and they cannot move it from here;
      // its timer still comes no later than its next change.
      ++evaluations_skipped_;
      continue;
    }
    SegmentState& s = *segments_[slot];
    if ((s.reads & ~loaded) != 0) {
      loaded |= s.reads;
      store_.Load(p, at, &view_, static_cast<ProfileStore::LoadParts>(loaded));
    }
    if ((reason & kEvaluate) == 0 && appended_events_ > 0 && !MatchesAppendedEvents(s, at)) {
      // Only events were added, after every other, and none is one the rule can see.
      ++evaluations_skipped_;
      continue;
    }
    Evaluator eval(view_, at, options_.retention_ms, &membership,
                   s.time_dependent ? &due : nullptr);
    ++evaluations_;
    const bool member = eval.Test(*s.rule);
    if (member == IsMember(slot, p)) continue;
    SetMember(s, p, member);
    if (!quiet) Emit(p, s, member ? ChangeKind::kEnter : ChangeKind::kExit, at, cause);
    for (uint32_t d : s.dependents) Mark(d);
  }
  return due;
}

bool Shard::MatchesAppendedEvents(const SegmentState& s, int64_t at) {
  const size_t n = view_.num_events();
  if (n < appended_events_) return true;  // not all in the view: cannot tell
  Evaluator eval(view_, at, options_.retention_ms, /*segments=*/nullptr);
  for (size_t i = n - appended_events_; i < n; ++i) {
    for (const auto& [selector, where_reads_now] : s.appended_selectors) {
      if (!selector->any_type && view_.event_type(i) != selector->type_id) continue;
      if (where_reads_now || eval.EventMatches(*selector, i)) return true;
    }
  }
  return false;
}

// REQUIRES: when !replace, `due` only lowers the timer (the other time-dependent
// segments of p were not re-evaluated, so the current timer still covers them).
void Shard::Schedule(Slot p, int64_t due, bool replace) {
  int64_t& timer = table_.timer(p);
  if (replace) timer = kNever;
  if (due >= timer) return;
  timer = due;
  timers_.Push(due, p);
}

void Shard::AdvanceTo(int64_t t) {
  int64_t due;
  Slot p;
  while (timers_.PopDue(t, &due, &p)) {
    if (!store_.IsLive(p) || table_.timer(p) != due) continue;  // superseded
    MarkTimeDependent();
    const int64_t next = Reevaluate(p, due, Cause::kTime, /*quiet=*/false);
    Schedule(p, next, /*replace=*/true);
  }
  now_ = std::max(now_, t);
}

absl::Status Shard::Apply(const ProfileUpdate& update) { return ApplyWith(update); }

absl::Status Shard::Apply(const UpdateRef& update) { return ApplyWith(update); }

template <typename Update>
absl::Status Shard::ApplyWith(const Update& update) {
  if (update.del) {
    if (absl::Status s = ValidateProfileKey(update.key); !s.ok()) return s;
    if (std::optional<Slot> p = store_.Find(update.key)) EraseProfile(*p, Cause::kProfileDelete);
    ++updates_applied_;
    return absl::OkStatus();
  }
  absl::StatusOr<AppliedUpdate> applied = store_.Apply(update, now_);
  if (!applied.ok()) return applied.status();
  ++updates_applied_;
  GrowTable();
  const Slot p = applied->slot;
  if (applied->created) {
    table_.ClearRow(p);
    MarkAll();
  } else {
    for (uint32_t name : applied->attributes) {
      if (auto it = by_attribute_.find(name); it != by_attribute_.end()) {
        for (uint32_t slot : it->second) Mark(slot);
      }
    }
    for (uint32_t type : applied->event_types) {
      if (auto it = by_event_type_.find(type); it != by_event_type_.end()) {
        for (const auto& [slot, mark] : it->second) {
          Mark(slot, applied->events_dropped ? kEvaluate : mark);
        }
      }
      for (uint32_t slot : any_event_type_) {
        Mark(slot, applied->events_dropped ? kEvaluate : EventsAddedMark(*segments_[slot], type));
      }
    }
  }
  appended_events_ =
      applied->events_appended && !applied->events_dropped ? applied->events_added : 0;
  const int64_t due = Reevaluate(p, now_, Cause::kUpdate, /*quiet=*/false);
  appended_events_ = 0;
  Schedule(p, due, /*replace=*/applied->created);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Shard::Replay(const ProfileData& profile, bool quiet) {
  return ReplayWith(profile, quiet);
}

absl::StatusOr<uint64_t> Shard::Replay(const ProfileRef& profile, bool quiet) {
  return ReplayWith(profile, quiet);
}

template <typename Profile>
absl::StatusOr<uint64_t> Shard::ReplayWith(const Profile& profile, bool quiet) {
  absl::StatusOr<ReplacedProfile> replaced = store_.Replace(profile, now_);
  if (!replaced.ok()) return replaced.status();
  GrowTable();
  const Slot p = replaced->slot;
  if (replaced->created) table_.ClearRow(p);
  MarkAll();
  const int64_t due = Reevaluate(p, now_, Cause::kReplay, quiet);
  Schedule(p, due, /*replace=*/true);
  return replaced->events_added;
}

void Shard::EraseProfile(Slot p, Cause cause) {
  for (uint32_t slot : order_) {
    SegmentState& s = *segments_[slot];
    if (!IsMember(slot, p)) continue;
    SetMember(s, p, false);
    Emit(p, s, ChangeKind::kExit, now_, cause);
  }
  table_.ClearRow(p);
  store_.Erase(p);
}

void Shard::Bind(Expr& rule, const SegmentCatalog& catalog, bool intern) {
  Interner& names = store_.interner();
  auto id = [&](const std::string& name) -> uint32_t {
    if (intern) return names.Intern(name);
    return names.Find(name).value_or(kUnbound);
  };
  auto bind_selector = [&](Selector& s) {
    if (!s.any_type) s.type_id = id(s.event_type);
  };
  VisitExprs(rule, [&](Expr& e) {
    switch (e.kind) {
      case ExprKind::kName:
      case ExprKind::kHas:
        e.name_id = id(e.name);
        break;
      case ExprKind::kInSegment: {
        std::shared_ptr<const SegmentDef> ref = catalog.Find(e.segment);
        e.segment_slot = ref != nullptr ? ref->slot : kUnbound;
        break;
      }
      case ExprKind::kAggregate:
        bind_selector(e.selector);
        if (!e.property.empty()) e.property_id = id(e.property);
        break;
      case ExprKind::kSequence:
        for (Selector& s : e.steps) bind_selector(s);
        break;
      default:
        break;
    }
  });
}

void Shard::RebuildIndexes(const SegmentCatalog& catalog) {
  order_.clear();
  rank_.assign(catalog.slot_limit(), 0);
  by_attribute_.clear();
  by_event_type_.clear();
  any_event_type_.clear();
  time_dependent_.clear();
  if (segments_.size() < catalog.slot_limit()) segments_.resize(catalog.slot_limit());
  marked_.assign(segments_.size(), 0);
  marked_ranks_.clear();
  for (auto& s : segments_) {
    if (s != nullptr) s->dependents.clear();
  }
  Interner& names = store_.interner();
  for (const auto& def : catalog.order()) {
    const uint32_t slot = def->slot;
    rank_[slot] = static_cast<uint32_t>(order_.size());
    order_.push_back(slot);
    const RuleInfo& info = def->info;
    for (const std::string& a : info.attributes) by_attribute_[names.Intern(a)].push_back(slot);
    for (const std::string& t : info.event_types) {
      const uint32_t type = names.Intern(t);
      by_event_type_[type].push_back({slot, EventsAddedMark(*segments_[slot], type)});
    }
    if (info.any_event_type) any_event_type_.push_back(slot);
    if (info.time_dependent()) time_dependent_.push_back(slot);
    for (const std::string& ref : info.segments) {
      segments_[catalog.Find(ref)->slot]->dependents.push_back(slot);
    }
  }
}

SegmentDiff Shard::PutSegment(const std::shared_ptr<const SegmentDef>& def,
                              const SegmentCatalog& catalog) {
  if (segments_.size() <= def->slot) segments_.resize(def->slot + 1);
  std::unique_ptr<SegmentState>& state = segments_[def->slot];
  if (state == nullptr) state = std::make_unique<SegmentState>();
  state->slot = def->slot;
  state->def = def;
  state->rule = CloneExpr(*def->rule);
  Bind(*state->rule, catalog, /*intern=*/true);
  state->time_dependent = def->info.time_dependent();
  state->reads = PartsRead(def->info);
  state->polarity_by_type.clear();
  for (const std::string& type : def->info.event_types) {
    state->polarity_by_type[store_.interner().Intern(type)] = EventPolarity(*def->rule, type);
  }
  state->any_type_polarity =
      def->info.any_event_type ? EventPolarity(*def->rule, "") : Polarity::kNone;
  state->appended_selectors.clear();
  for (const Selector* selector : AppendedEventSelectors(*state->rule)) {
    const bool where_reads_now =
        selector->where != nullptr && CollectRuleInfo(*selector->where).reads_now;
    state->appended_selectors.push_back({selector, where_reads_now});
  }
  RebuildIndexes(catalog);
  GrowTable();

  // The backfill: every profile, as of now. A replaced rule may also drop timers it no
  // longer needs; those fire once, find nothing due, and are rescheduled.
  SegmentDiff diff;
  const ScanRule scan(*state->rule, state->reads);
  ForEachProfile([&](Slot p) {
    const bool was = IsMember(def->slot, p);
    // Not a member before or after, and no timer can make it one.
    if (!was && !PassesGuards(scan, p)) return;
    Mark(def->slot);
    const int64_t due = Reevaluate(p, now_, Cause::kSegmentPut, /*quiet=*/false);
    Schedule(p, due, /*replace=*/false);
    const bool is = IsMember(def->slot, p);
    if (is != was) ++(is ? diff.entered : diff.exited);
  });
  diff.members = state->member_count;
  return diff;
}

SegmentDiff Shard::DryRunSegment(const SegmentDef& def, const SegmentCatalog& catalog) {
  std::unique_ptr<Expr> rule = CloneExpr(*def.rule);
  Bind(*rule, catalog, /*intern=*/false);
  const ScanRule scan(*rule, PartsRead(def.info));
  SegmentDiff diff;
  ForEachProfile([&](Slot p) {
    const bool is = Test(scan, p);
    const bool was = IsMember(def.slot, p) && segments_[def.slot]->def->id == def.id;
    if (is != was) ++(is ? diff.entered : diff.exited);
    diff.members += is;
  });
  return diff;
}

Shard::ScanRule::ScanRule(const Expr& rule, ProfileStore::LoadParts parts)
    : rule(rule), parts(parts) {
  if (rule.kind != ExprKind::kAnd || (parts & ProfileStore::kEvents) == 0) return;
  for (const auto& c : rule.children) {
    if (ReadsOnlyAttributes(*c)) guards.push_back(c.get());
  }
}

bool Shard::PassesGuards(const ScanRule& r, Slot p) {
  if (r.guards.empty()) return true;
  store_.Load(p, now_, &view_, ProfileStore::kAttributes);
  Evaluator eval(view_, now_, options_.retention_ms, /*segments=*/nullptr);
  return std::all_of(r.guards.begin(), r.guards.end(),
                     [&](const Expr* g) { return eval.Test(*g); });
}

bool Shard::Test(const ScanRule& r, Slot p) {
  if (!PassesGuards(r, p)) return false;
  store_.Load(p, now_, &view_, r.parts);
  const ProfileMembership membership(*this, p);
  Evaluator eval(view_, now_, options_.retention_ms, &membership);
  return eval.Test(r.rule);
}

uint64_t Shard::DeleteSegment(const SegmentDef& def, const SegmentCatalog& catalog) {
  std::unique_ptr<SegmentState> state = std::move(segments_[def.slot]);
  uint64_t exited = 0;
  if (state != nullptr) {
    table_.ForEachMember(def.slot, [&](Slot p) {
      Emit(p, *state, ChangeKind::kExit, now_, Cause::kSegmentDelete);
      ++exited;
    });
    table_.ClearSegment(def.slot);
  }
  RebuildIndexes(catalog);
  return exited;
}

uint64_t Shard::MemberCount(uint32_t segment_slot) const {
  return segment_slot < segments_.size() && segments_[segment_slot] != nullptr
             ? segments_[segment_slot]->member_count
             : 0;
}

ProfileData Shard::ReadProfile(Slot p) const {
  ProfileData data = store_.Read(p, now_);
  for (uint32_t slot : order_) {
    if (IsMember(slot, p)) data.segments.push_back(segments_[slot]->def->id);
  }
  std::sort(data.segments.begin(), data.segments.end());
  return data;
}

std::optional<ProfileData> Shard::GetProfile(std::string_view key) {
  std::optional<Slot> p = store_.Find(key);
  if (!p) return std::nullopt;
  return ReadProfile(*p);
}

uint32_t Shard::ReadMembers(uint32_t segment_slot, uint32_t from, size_t max,
                            std::vector<std::string>* out) const {
  if (segment_slot >= segments_.size() || segments_[segment_slot] == nullptr) return kExportDone;
  Slot p = from;
  for (size_t n = 0; p < store_.slot_limit() && n < max; ++p) {
    if (!IsMember(segment_slot, p)) continue;
    out->emplace_back(store_.Key(p));
    ++n;
  }
  return p < store_.slot_limit() ? p : kExportDone;
}

void Shard::Count(const Expr& rule, const SegmentCatalog& catalog, uint64_t* matched,
                  uint64_t* total) {
  std::unique_ptr<Expr> bound = CloneExpr(rule);
  Bind(*bound, catalog, /*intern=*/false);
  const ScanRule scan(*bound, PartsRead(CollectRuleInfo(rule)));
  ForEachProfile([&](Slot p) {
    *matched += Test(scan, p);
    ++*total;
  });
}

void Shard::Funnel(std::span<const Selector> steps, int64_t within_ms,
                   std::vector<uint64_t>* counts, uint64_t* total, uint64_t* scanned) {
  std::vector<Selector> bound;
  bound.reserve(steps.size());
  const SegmentCatalog no_segments(0);  // steps cannot reference segments
  for (const Selector& s : steps) {
    Selector b = CloneSelector(s);
    Expr holder;
    holder.kind = ExprKind::kSequence;
    holder.steps.push_back(std::move(b));
    Bind(holder, no_segments, /*intern=*/false);
    bound.push_back(std::move(holder.steps[0]));
  }
  counts->resize(steps.size(), 0);
  // Steps that test only the event type (the usual funnel) are matched on the event
  // heads, with no view, by the store (the evaluator's greedy match: each step takes the
  // earliest event after the previous step's).
  const bool types_only =
      std::all_of(bound.begin(), bound.end(), [](const Selector& s) { return s.where == nullptr; });
  if (types_only) {
    std::vector<ProfileStore::TypeStep> types;
    for (const Selector& s : bound) types.push_back({s.any_type, s.type_id});
    // `within` bounds the window; retention drops what Load drops.
    const int64_t after = within_ms < 0 ? std::numeric_limits<int64_t>::min() : now_ - within_ms;
    std::vector<uint64_t> matched(steps.size() + 1, 0);
    *scanned += store_.MatchTypeSequence(types, now_, after, matched);
    for (size_t k = 0; k < matched.size(); ++k) {
      for (size_t i = 0; i < k; ++i) (*counts)[i] += matched[k];
      *total += matched[k];
    }
    return;
  }
  ForEachProfile([&](Slot p) {
    store_.Load(p, now_, &view_, ProfileStore::kEvents);  // steps read events only
    Evaluator eval(view_, now_, options_.retention_ms, nullptr);
    const size_t k = eval.MatchSequence(bound, within_ms, scanned);
    for (size_t i = 0; i < k; ++i) ++(*counts)[i];
    ++*total;
  });
}

std::optional<ExplainResult> Shard::Explain(std::string_view key, const Expr& rule,
                                            const SegmentCatalog& catalog) {
  std::optional<Slot> p = store_.Find(key);
  if (!p) return std::nullopt;
  std::unique_ptr<Expr> bound = CloneExpr(rule);
  Bind(*bound, catalog, /*intern=*/false);
  store_.Load(*p, now_, &view_);
  const ProfileMembership membership(*this, *p);
  Evaluator eval(view_, now_, options_.retention_ms, &membership);
  return eval.Explain(*bound);
}

uint32_t Shard::ReadProfiles(uint32_t from, size_t max, std::vector<ProfileData>* out) {
  Slot p = from;
  for (size_t n = 0; p < store_.slot_limit() && n < max; ++p) {
    if (!store_.IsLive(p)) continue;
    out->push_back(ReadProfile(p));
    ++n;
  }
  return p < store_.slot_limit() ? p : kExportDone;
}

void Shard::SnapshotMembers(const StringSet* segments, std::vector<Snapshot::Group>* out) const {
  for (uint32_t slot : order_) {
    const SegmentState& s = *segments_[slot];
    if (segments != nullptr && !segments->contains(s.def->id)) continue;
    Snapshot::Group& g = out->emplace_back();
    g.segment = s.def->id;
    g.time = now_;
    g.ends.reserve(s.member_count);
    table_.ForEachMember(slot, [&](Slot p) {
      g.keys.append(store_.Key(p));
      g.ends.push_back(static_cast<uint32_t>(g.keys.size()));
    });
  }
}

void Shard::Flush() {
  if (pending_.empty()) return;
  log_.Append(pending_);
  changes_emitted_ += pending_.size();
  pending_.clear();
}

ShardStats Shard::Stats() const {
  ShardStats s;
  s.profiles = store_.size();
  s.events = store_.event_count();
  s.updates_applied = updates_applied_;
  s.changes_emitted = changes_emitted_;
  s.evaluations = evaluations_;
  s.evaluations_skipped = evaluations_skipped_;
  s.now = now_;
  s.memory_bytes = store_.MemoryBytes() + timers_.MemoryBytes() + table_.MemoryBytes();
  return s;
}

}  // namespace segd
