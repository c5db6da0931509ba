#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "core/change.h"
#include "core/change_log.h"
#include "core/engine_options.h"
#include "core/evaluator.h"
#include "core/membership_table.h"
#include "core/prefetch.h"
#include "core/profile_store.h"
#include "core/segment_catalog.h"
#include "core/snapshot.h"
#include "core/text.h"
#include "core/timer_queue.h"

namespace segd {

inline constexpr uint32_t kExportDone = 0xffffffffu;

struct SegmentDiff {
  uint64_t entered = 0;
  uint64_t exited = 0;
  uint64_t members = 0;  // after the change
};

struct ShardStats {
  uint64_t profiles = 0;
  uint64_t events = 0;
  uint64_t updates_applied = 0;
  uint64_t changes_emitted = 0;
  uint64_t evaluations = 0;          // rule evaluations of stored segments, all causes
  uint64_t evaluations_skipped = 0;  // marked, but monotone in what the update added
  uint64_t memory_bytes = 0;
  int64_t now = 0;
};

// One partition of the profiles, with everything that depends on them: each stored
// segment's rule bound to this shard's interned names, the memberships and timers of
// every profile (a MembershipTable), and the change log.
//
// Incremental evaluation: an update re-evaluates only the segments that read an
// attribute it changed or an event type it added or dropped; a segment whose
// membership changes re-evaluates the segments that reference it (in dependency order).
//
// Exact time: every profile holding a time-dependent membership has one timer, at or
// before the earliest moment any of its time-dependent results can change. When it
// fires, those segments are re-evaluated as of that moment, so every flip is emitted
// at its exact due time, in time order.
//
// Changes are buffered while an operation runs; Flush() moves them to the change log
// (callers flush once per batch; an operation that emits many flushes as it goes).
//
// Thread safety: none, except changes() (the ChangeLog is thread-safe). A shard is
// driven by one thread at a time.
class Shard {
 public:
  Shard(int index, const EngineOptions& options);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int index() const { return index_; }
  int64_t now() const { return now_; }

  // Fires every timer due at or before `t`, each evaluated as of its due time, then
  // makes `t` the shard's now. Earlier times are ignored (now never moves back).
  void AdvanceTo(int64_t t);

  // A hint that `input` — an update, or a profile to replay — is about to be applied:
  // one stage of the batch's prefetch pipeline (see ProfileStore::Prefetch). For an
  // update or a borrowed profile (a Replay RPC's), the record stage also looks up its
  // string values in the dictionary (for a replayed profile, whose values are hashed again
  // for it, ~5 % more profiles/s measured where the dictionary misses the cache; an owned
  // profile, measured when its allocations dominated, gained nothing); the blob stage
  // loads the profile's row of memberships.
  //
  // A borrowed input's own memory (RefMemory) is loaded at the first stage, before its key
  // and values are read.
  template <typename Input>
  void Prefetch(const Input& input, ProfileStore::PrefetchStage stage) const {
    if constexpr (requires { input.memory; }) {
      if (stage == ProfileStore::PrefetchStage::kIndex) {
        PrefetchBytes(input.memory.wire);
        PrefetchBytes(input.memory.arena);
      }
    }
    const std::optional<Slot> slot = store_.Prefetch(input.key, stage);
    if constexpr (!std::is_same_v<Input, ProfileData>) {
      if (stage == ProfileStore::PrefetchStage::kRecord) store_.PrefetchValues(input);
    }
    if (slot && stage == ProfileStore::PrefetchStage::kBlob) table_.PrefetchRow(*slot);
  }
  // Starts loading each cache line of `bytes`, up to 4 KiB of them.
  static void PrefetchBytes(std::string_view bytes) {
    constexpr size_t kMaxBytes = 4096;
    const auto begin = reinterpret_cast<uintptr_t>(bytes.data());
    const uintptr_t end = begin + std::min(bytes.size(), kMaxBytes);
    for (uintptr_t p = begin & ~uintptr_t{63}; p < end; p += 64) {
      PrefetchLine(reinterpret_cast<const void*>(p));
    }
  }
  // Applies one update at now() (SPEC §2). On error nothing changed.
  absl::Status Apply(const ProfileUpdate& update);
  absl::Status Apply(const UpdateRef& update);
  // Replaces or creates the whole profile; returns the events it now holds. quiet:
  // memberships follow, but no change is emitted.
  absl::StatusOr<uint64_t> Replay(const ProfileData& profile, bool quiet);
  absl::StatusOr<uint64_t> Replay(const ProfileRef& profile, bool quiet);

  // Segment definitions. The catalog already holds the new state (after Commit or
  // Erase); `def` is the segment put or deleted.
  SegmentDiff PutSegment(const std::shared_ptr<const SegmentDef>& def,
                         const SegmentCatalog& catalog);
  // What PutSegment would change for this segment alone; changes nothing.
  SegmentDiff DryRunSegment(const SegmentDef& def, const SegmentCatalog& catalog);
  uint64_t DeleteSegment(const SegmentDef& def, const SegmentCatalog& catalog);
  uint64_t MemberCount(uint32_t segment_slot) const;

  // Queries. Rules passed here are checked and unbound; the shard binds a copy
  // without adding names to its interner.
  std::optional<ProfileData> GetProfile(std::string_view key);
  // Appends the keys of at most `max` members of the segment from slot `from` on to
  // `out`; returns the slot to continue from, or kExportDone after the last.
  uint32_t ReadMembers(uint32_t segment_slot, uint32_t from, size_t max,
                       std::vector<std::string>* out) const;
  void Count(const Expr& rule, const SegmentCatalog& catalog, uint64_t* matched, uint64_t* total);
  void Funnel(std::span<const Selector> steps, int64_t within_ms, std::vector<uint64_t>* counts,
              uint64_t* total, uint64_t* scanned);
  std::optional<ExplainResult> Explain(std::string_view key, const Expr& rule,
                                       const SegmentCatalog& catalog);
  // Appends at most `max` profiles from slot `from` on to `out`; returns the slot to
  // continue from, or kExportDone after the last.
  uint32_t ReadProfiles(uint32_t from, size_t max, std::vector<ProfileData>* out);
  // Appends a group with the keys of every member of each of the given segments (null:
  // all) to `out`.
  void SnapshotMembers(const StringSet* segments, std::vector<Snapshot::Group>* out) const;

  // Moves the changes of the operations so far to the change log.
  void Flush();
  ChangeLog& changes() { return log_; }
  const ChangeLog& changes() const { return log_; }
  ShardStats Stats() const;

 private:
  template <typename Update>  // ProfileUpdate or UpdateRef
  absl::Status ApplyWith(const Update& update);
  template <typename Profile>  // ProfileData or ProfileRef
  absl::StatusOr<uint64_t> ReplayWith(const Profile& profile, bool quiet);
  struct SegmentState;
  class ProfileMembership;

  // Calls f(p) for every live profile slot, in slot order, loading the blobs and
  // membership rows of the profiles a few slots ahead: a scan of every profile
  // (backfill, count, funnel) is otherwise bound by one cache miss per profile.
  template <typename F>
  void ForEachProfile(const F& f) const {
    constexpr Slot kAhead = 8;
    const Slot limit = store_.slot_limit();
    for (Slot p = 0; p < limit; ++p) {
      if (p + kAhead < limit) {
        store_.PrefetchBlob(p + kAhead);
        table_.PrefetchRow(p + kAhead);
      }
      if (store_.IsLive(p)) f(p);
    }
  }

  // A bound rule as a scan of every profile tests it: the operands of a top-level `and`
  // that read only attributes (cheap, and false for most profiles of a selective rule)
  // are tested on the attributes alone before the history is decoded.
  struct ScanRule {
    ScanRule(const Expr& rule, ProfileStore::LoadParts parts);
    const Expr& rule;
    ProfileStore::LoadParts parts;    // what the whole rule reads
    std::vector<const Expr*> guards;  // empty unless the rule also reads events
  };
  // False if a guard of `r` is false for profile p: then so is the rule, at any time,
  // until an update changes p's attributes.
  bool PassesGuards(const ScanRule& r, Slot p);
  // Evaluates a bound rule for profile p as of now (memberships as they stand).
  bool Test(const ScanRule& r, Slot p);

  bool IsMember(uint32_t segment_slot, Slot p) const;
  // The profile as a client sees it, with its sorted segment ids.
  ProfileData ReadProfile(Slot p) const;
  void SetMember(SegmentState& s, Slot p, bool member);
  void GrowTable();
  // Why a segment is marked for re-evaluation (bits of marked_): it must be evaluated
  // (kEvaluate), or the update only added events, and then it may be skipped when the
  // profile is a member (kSkipIfMember) or not (kSkipIfNotMember) because the rule is
  // monotone in them, or (any of these three bits, kEventsAdded for a rule that can move
  // both ways) when they were appended and the rule can see none of them
  // (MatchesAppendedEvents).
  enum MarkReason : uint8_t {
    kEvaluate = 1,
    kSkipIfMember = 2,
    kSkipIfNotMember = 4,
    kEventsAdded = 8,
  };
  void Mark(uint32_t segment_slot, uint8_t reason = kEvaluate);
  // The mark an update that added events of `type`, dropping none, makes on s.
  static MarkReason EventsAddedMark(const SegmentState& s, uint32_t type);
  void MarkAll();
  void MarkTimeDependent();
  // Evaluates the marked segments for profile p as of `at`, cascading to dependents of
  // every segment whose membership changes; emits changes (unless quiet). Returns the
  // earliest candidate time of the time-dependent segments evaluated.
  int64_t Reevaluate(Slot p, int64_t at, Cause cause, bool quiet);
  // Whether one of the last appended_events_ events of view_ (which holds p's events)
  // matches a selector through which appended events can change s's rule.
  bool MatchesAppendedEvents(const SegmentState& s, int64_t at);
  void Schedule(Slot p, int64_t due, bool replace);
  void Emit(Slot p, const SegmentState& s, ChangeKind kind, int64_t time, Cause cause);
  void Bind(Expr& rule, const SegmentCatalog& catalog, bool intern);
  void RebuildIndexes(const SegmentCatalog& catalog);
  void EraseProfile(Slot p, Cause cause);

  const int index_;
  const EngineOptions options_;
  int64_t now_ = std::numeric_limits<int64_t>::min();
  ProfileStore store_;
  ProfileView view_;  // scratch for evaluations

  std::vector<std::unique_ptr<SegmentState>> segments_;  // by segment slot
  std::vector<uint32_t> order_;                          // segment slots, dependency order
  std::vector<uint32_t> rank_;                           // by segment slot: index in order_
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> by_attribute_;  // name id -> slots
  // type id -> the segments that select it, each with its EventsAddedMark
  absl::flat_hash_map<uint32_t, std::vector<std::pair<uint32_t, MarkReason>>> by_event_type_;
  std::vector<uint32_t> any_event_type_;  // slots of segments with a "*" selector
  std::vector<uint32_t> time_dependent_;  // slots of time-dependent segments

  std::vector<uint32_t> marked_ranks_;  // min-heap of ranks to evaluate
  std::vector<uint8_t> marked_;         // by segment slot: MarkReason bits
  // While Apply re-evaluates: how many events the update appended after every event of
  // the history (0 when it added none, dropped one, or inserted one earlier).
  uint32_t appended_events_ = 0;

  MembershipTable table_;  // by profile slot: memberships and the due time of its timer
  TimerQueue timers_;

  std::vector<Change> pending_;
  ChangeLog log_;
  uint64_t updates_applied_ = 0;
  uint64_t changes_emitted_ = 0;
  uint64_t evaluations_ = 0;
  uint64_t evaluations_skipped_ = 0;
};

}  // namespace segd
