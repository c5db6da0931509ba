#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "core/engine_options.h"
#include "core/interner.h"
#include "core/profile_check.h"
#include "core/profile_ref.h"
#include "core/profile_update.h"
#include "core/profile_view.h"

namespace segd {

// A profile's place in its shard's store: dense, reused after the profile is erased.
using Slot = uint32_t;

// Interned names, inline up to 16: an update changes an attribute or two and adds events
// of one type, a replayed profile names a few dozen at most, and neither allocates.
using NameIds = absl::InlinedVector<uint32_t, 16>;

// What an applied update changed, so the shard re-evaluates only the
// segments that read it.
struct AppliedUpdate {
  Slot slot = 0;
  bool created = false;  // the profile did not exist before
  NameIds attributes;    // interned names of attributes whose value changed
  NameIds event_types;   // interned types of events added or dropped
  uint32_t events_added = 0;
  bool events_dropped = false;  // max_events dropped an event (so some selector may shrink)
  // Every event added went after every event the history had (so the events added are
  // its last events_added events).
  bool events_appended = true;
};

// What a replace did. It may have changed anything, so it names no attributes or event
// types: the shard re-evaluates every segment.
struct ReplacedProfile {
  Slot slot = 0;
  bool created = false;  // the profile did not exist before
  uint32_t events_added = 0;
};

// The profiles of one shard, stored compactly (see profile_codec.h): keys, attributes
// and event histories, with the validation and update semantics of SPEC §1–2.
//
// Thread safety: none; owned by one shard, used by one thread at a time.
class ProfileStore {
 public:
  explicit ProfileStore(const EngineOptions& options);
  ~ProfileStore();
  ProfileStore(const ProfileStore&) = delete;
  ProfileStore& operator=(const ProfileStore&) = delete;

  std::optional<Slot> Find(std::string_view key) const;

  // Profiles are scattered over memory, so a batch overlaps their cache misses in a
  // software pipeline: a key is prefetched in each stage, in this order, a few updates
  // apart, before it is updated. Each stage reads what the one before loaded.
  enum class PrefetchStage : uint8_t {
    kIndex,   // the key index entries of the key
    kRecord,  // the profile's record (where its blob is)
    kBlob,    // the profile's blob (its first KiB)
  };
  // Returns the slot the key probably has (it may be wrong or absent: a hint only).
  std::optional<Slot> Prefetch(std::string_view key, PrefetchStage stage) const;
  // Starts the dictionary lookups of the string values of `update`'s events.
  void PrefetchValues(const ProfileUpdate& update) const;
  void PrefetchValues(const UpdateRef& update) const;
  void PrefetchValues(const ProfileRef& profile) const;

  // Checks an update against SPEC §1–2 without changing anything. The message says
  // what is wrong and where (`set["age"]: float value is NaN`).
  absl::Status Validate(const ProfileUpdate& update, int64_t now) const;
  absl::Status Validate(const UpdateRef& update, int64_t now) const;

  // Applies one update at time `now` (SPEC §2): creates the profile if missing, then
  // unset, set, increment, events (time 0 = now; duplicates by (type, id) ignored;
  // events at or before now - retention dropped silently; the oldest dropped past
  // max_events). On error nothing changes.
  // REQUIRES: !update.del (deletes go through Erase).
  absl::StatusOr<AppliedUpdate> Apply(const ProfileUpdate& update, int64_t now);
  absl::StatusOr<AppliedUpdate> Apply(const UpdateRef& update, int64_t now);

  // Replaces (or creates) the whole profile `profile.key` with the given attributes
  // and events, validated as an update would be; `segments` is ignored. On error
  // nothing changes.
  absl::StatusOr<ReplacedProfile> Replace(const ProfileData& profile, int64_t now);
  // The same, for a profile borrowed from a request's bytes (core/profile_ref.h).
  absl::StatusOr<ReplacedProfile> Replace(const ProfileRef& profile, int64_t now);

  // Removes the profile; its slot may be reused by a later create.
  void Erase(Slot slot);

  // What Load decodes: a rule that reads no attributes (or no events) needs only the
  // other part. The parts not loaded read as empty.
  enum LoadParts : uint8_t { kAttributes = 1, kEvents = 2, kAll = 3 };

  // Fills `view` with the profile as of `now`: events at or before now - retention
  // are left out. The view is valid until the store next changes a profile.
  void Load(Slot slot, int64_t now, ProfileView* view, LoadParts parts = kAll) const;

  // One step of MatchTypeSequence: an event type (an interned name id), or any type.
  struct TypeStep {
    bool any = false;
    uint32_t type = 0;
  };
  // The funnel of every live profile: how many of `steps` its events as of `now` (as Load
  // keeps them) and after `after` match in order, each step taking the earliest event
  // after the previous step's — the greedy match of Evaluator::MatchSequence, for steps
  // that test the type only. Adds 1 to matched[m] for each profile that matched m steps
  // (`matched` has steps.size() + 1 entries); returns the events read.
  //
  // Reads the event heads only, and several profiles at a time: decoding one history is
  // a chain of dependent loads (each event's length says where the next one starts), so
  // walking a few histories side by side overlaps their chains.
  uint64_t MatchTypeSequence(std::span<const TypeStep> steps, int64_t now, int64_t after,
                             std::span<uint64_t> matched) const;

  // Starts loading the blob of a live profile (scans that walk the slots in order).
  void PrefetchBlob(Slot slot) const;

  // The profile as a client sees it: attributes sorted by name, retained events in
  // history order, `segments` left empty (the shard fills it).
  ProfileData Read(Slot slot, int64_t now) const;

  std::string_view Key(Slot slot) const;

  // Drops events that retention no longer keeps from storage.
  void Prune(Slot slot, int64_t now);

  // Slots are in [0, slot_limit()); IsLive tells which hold a profile.
  Slot slot_limit() const;
  bool IsLive(Slot slot) const;
  size_t size() const;           // live profiles
  uint64_t event_count() const;  // events held, all profiles
  size_t MemoryBytes() const;    // an estimate of the heap held
  // How many long histories the store keeps decoded (see Load).
  size_t CachedHistories() const;

  Interner& interner() { return interner_; }
  const Interner& interner() const { return interner_; }

 private:
  // Layout and helpers are the implementation's (profile_store.cc, profile_codec.h).
  struct Impl;
  template <typename Update>  // ProfileUpdate or UpdateRef
  absl::Status ValidateWith(const Update& update, int64_t now) const;
  template <typename Update>
  absl::StatusOr<AppliedUpdate> ApplyWith(const Update& update, int64_t now);
  template <typename Profile>  // ProfileData or ProfileRef
  absl::StatusOr<ReplacedProfile> ReplaceWith(const Profile& profile, int64_t now);

  EngineOptions options_;
  Interner interner_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace segd
