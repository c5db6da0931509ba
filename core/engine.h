#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "core/change.h"
#include "core/change_log.h"
#include "core/clock.h"
#include "core/cursor.h"
#include "core/engine_options.h"
#include "core/profile_update.h"
#include "core/segment_catalog.h"
#include "core/shard.h"

namespace segd {

// One rejected update of a batch (SPEC §2): its index in the batch and what was wrong.
struct UpdateError {
  uint32_t index = 0;
  std::string key;
  std::string message;
};

struct BatchResult {
  uint32_t applied = 0;
  std::vector<UpdateError> errors;
};

struct ReplayResult {
  uint64_t profiles = 0;  // replaced or created
  uint64_t events = 0;    // events held by the replayed profiles
  std::vector<UpdateError> errors;
};

struct PutSegmentResult {
  SegmentInfo segment;
  uint64_t entered = 0;
  uint64_t exited = 0;
};

struct CountResult {
  uint64_t matched = 0;
  uint64_t total = 0;
};

struct FunnelResult {
  std::vector<uint64_t> counts;  // counts[k]: profiles matching sequence(step 1..k+1)
  uint64_t total = 0;
  uint64_t events_scanned = 0;
};

struct EngineStats {
  uint64_t profiles = 0;
  uint64_t events = 0;
  uint32_t segments = 0;
  uint64_t updates_applied = 0;
  uint64_t changes_emitted = 0;
  uint64_t memory_bytes = 0;
  int64_t now = 0;
  uint64_t incarnation = 0;
};

// A snapshot of the members of some segments, and the cursor of the cut: reading
// the change log after `cursor` continues exactly where the snapshot ends (SPEC §4).
struct Snapshot {
  std::vector<Change> members;  // cause kSnapshot, kind kEnter
  Cursor cursor;
};

// The engine: a segment catalog and N shards that partition the profiles by a hash
// of the key. Each call runs every shard it needs in turn, on the calling thread.
//
// Thread safety: none; one caller at a time. A server that runs shards on threads of
// their own drives them through shard(i) instead, one thread per shard, and uses the
// catalog checks here (PrepareSegment...) before posting a segment change to each.
class Engine {
 public:
  // SetTime works only when `clock` is a ManualClock.
  Engine(const EngineOptions& options, int num_shards, Clock& clock);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Which shard holds `key`.
  int ShardOf(std::string_view key) const;
  int num_shards() const { return static_cast<int>(shards_.size()); }
  Shard& shard(int i) { return *shards_[i]; }
  const SegmentCatalog& catalog() const { return catalog_; }

  // Ingest (SPEC §2). Fires due timers first, so every update sees the clock's now.
  BatchResult Apply(std::span<const ProfileUpdate> updates);
  ReplayResult Replay(std::span<const ProfileData> profiles, bool quiet);

  // Segments (SPEC §3, §5).
  absl::StatusOr<PutSegmentResult> PutSegment(const SegmentSpec& spec, bool dry_run);
  absl::StatusOr<uint64_t> DeleteSegment(std::string_view id);  // members that exited
  absl::StatusOr<SegmentInfo> GetSegment(std::string_view id) const;
  std::vector<SegmentInfo> ListSegments() const;

  // Queries.
  absl::StatusOr<ProfileData> GetProfile(std::string_view key);
  absl::StatusOr<std::vector<std::string>> Members(std::string_view segment);
  absl::StatusOr<CountResult> Count(std::string_view rule);
  absl::StatusOr<FunnelResult> Funnel(std::span<const std::string> steps, int64_t within_ms);
  absl::StatusOr<ExplainResult> Explain(std::string_view key, std::string_view segment,
                                        std::string_view rule);
  // Calls `f` with every profile, shard by shard (Export).
  void ForEachProfile(const std::function<void(ProfileData&&)>& f);

  // Time. Fires every timer due at or before the clock's now, emitting each flip at its
  // exact due time. SetTime is the manual clock's Admin.SetTime: it may not move back.
  void Tick();
  absl::Status SetTime(int64_t now_ms);

  // Changes (SPEC §4).
  Cursor CurrentCursor() const;
  // Every current member of the given segments (null: all) and the cursor of the cut.
  Snapshot TakeSnapshot(const absl::flat_hash_set<std::string>* segments);
  // Appends to `out` the changes after `cursor` of the given segments (null: all), at
  // most `max` read per shard, advancing `cursor`. OUT_OF_RANGE when the cursor is from
  // another incarnation or older than a shard's log; INVALID_ARGUMENT when it does not
  // fit this engine.
  absl::Status ReadChanges(Cursor* cursor, size_t max,
                           const absl::flat_hash_set<std::string>* segments,
                           std::vector<Change>* out) const;

  EngineStats Stats() const;
  uint64_t incarnation() const { return incarnation_; }

 private:
  int64_t Now() const { return clock_.NowMs(); }
  void FlushAll();

  EngineOptions options_;
  Clock& clock_;
  uint64_t incarnation_;
  SegmentCatalog catalog_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace segd
