#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/change.h"
#include "core/change_log.h"
#include "core/clock.h"
#include "core/cursor.h"
#include "core/engine_options.h"
#include "core/profile_update.h"
#include "core/segment_catalog.h"
#include "core/shard.h"
#include "core/shard_executor.h"
#include "core/snapshot.h"
#include "core/text.h"

namespace segd {

// One rejected update of a batch (SPEC §2): its index in the batch and what was wrong.
struct UpdateError {
  uint32_t index = 0;
  std::string key;
  std::string message;
};

struct BatchResult {
  uint32_t applied = 0;
  std::vector<UpdateError> errors;  // by index
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

// A piece of one shard's profiles (or of their keys), read from a slot on, and where
// to go on: what Export and ListMembers stream, piece by piece, so that memory stays
// bounded by a piece however many profiles a shard holds.
template <typename T>
struct ShardChunk {
  std::vector<T> items;
  uint32_t next = 0;  // the slot to continue from; kExportDone after the shard's last
};

// The engine: a segment catalog and N shards that partition the profiles by a hash of
// the key. Work on a shard runs through a ShardExecutor: inline on the calling thread
// (tests, benchmarks), or one thread per shard (the server), each shard owned by the
// one thread that runs its tasks.
//
// Every operation has an asynchronous form, whose `done` runs exactly once — on a
// shard's thread; or, when the request is rejected before any shard work (a bad rule,
// SetTime backwards) or with the inline executor, on the calling thread before the call
// returns, possibly while an engine lock is held: `done` must never call back into the
// engine — and a synchronous form that waits for it.
// REQUIRES: synchronous forms are never called from a shard's thread.
//
// Ordering: the tasks of one call reach each shard in call order, so the updates of
// one producer stream apply in order, and a segment operation is seen by every shard
// before anything posted after it.
//
// Thread safety: all methods may be called from any thread.
class Engine {
 public:
  template <typename T>
  using Done = absl::AnyInvocable<void(T) &&>;

  // `executor` (null: inline) must outlive the engine and have num_shards queues.
  // SetTime works only when `clock` is a ManualClock.
  Engine(const EngineOptions& options, int num_shards, Clock& clock,
         ShardExecutor* executor = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int ShardOf(std::string_view key) const;
  int num_shards() const { return static_cast<int>(shards_.size()); }
  // REQUIRES: the inline executor, or a quiescent engine (tests).
  Shard& shard(int i) { return *shards_[i]; }
  std::shared_ptr<const SegmentCatalog> catalog() const;
  uint64_t incarnation() const { return incarnation_; }
  const EngineOptions& options() const { return options_; }

  // Ingest (SPEC §2). Due timers fire first, so every update sees the clock's now.
  void ApplyAsync(std::vector<ProfileUpdate> updates, Done<BatchResult> done);
  // Updates borrowed from memory that the caller keeps, unchanged, until `done` runs.
  void ApplyAsync(std::span<const UpdateRef> updates, Done<BatchResult> done);
  // Profiles borrowed from memory that the caller keeps, unchanged, until `done` runs.
  void ReplayAsync(std::span<const ProfileRef> profiles, bool quiet, Done<ReplayResult> done);
  BatchResult Apply(std::span<const ProfileUpdate> updates);
  ReplayResult Replay(std::span<const ProfileData> profiles, bool quiet);

  // Segments (SPEC §3, §5).
  void PutSegmentAsync(SegmentSpec spec, bool dry_run, Done<absl::StatusOr<PutSegmentResult>> done);
  void DeleteSegmentAsync(std::string id, Done<absl::StatusOr<uint64_t>> done);
  void GetSegmentAsync(std::string id, Done<absl::StatusOr<SegmentInfo>> done);
  void ListSegmentsAsync(Done<std::vector<SegmentInfo>> done);
  absl::StatusOr<PutSegmentResult> PutSegment(const SegmentSpec& spec, bool dry_run);
  absl::StatusOr<uint64_t> DeleteSegment(std::string_view id);  // members that exited
  absl::StatusOr<SegmentInfo> GetSegment(std::string_view id);
  std::vector<SegmentInfo> ListSegments();

  // The diagnostics of a rule (empty: valid), references to unknown segments included.
  std::vector<Diagnostic> ValidateRule(std::string_view text) const;

  // Queries.
  void GetProfileAsync(std::string key, Done<absl::StatusOr<ProfileData>> done);
  // The keys of at most `max` members of `segment` in shard `shard`, from slot `from` on
  // (ListMembers, piece by piece). NOT_FOUND if the segment does not exist (in a
  // listing by pieces: was deleted since the listing began).
  void MembersChunkAsync(std::string segment, int shard, uint32_t from, size_t max,
                         Done<absl::StatusOr<ShardChunk<std::string>>> done);
  void CountAsync(std::string rule, Done<absl::StatusOr<CountResult>> done);
  void FunnelAsync(std::vector<std::string> steps, int64_t within_ms,
                   Done<absl::StatusOr<FunnelResult>> done);
  void ExplainAsync(std::string key, std::string segment, std::string rule,
                    Done<absl::StatusOr<ExplainResult>> done);
  // At most `max` profiles of shard `shard` from slot `from` on (Export, piece by piece).
  void ExportChunkAsync(int shard, uint32_t from, size_t max, Done<ShardChunk<ProfileData>> done);
  absl::StatusOr<ProfileData> GetProfile(std::string_view key);
  absl::StatusOr<std::vector<std::string>> Members(std::string_view segment);
  absl::StatusOr<CountResult> Count(std::string_view rule);
  absl::StatusOr<FunnelResult> Funnel(std::span<const std::string> steps, int64_t within_ms);
  absl::StatusOr<ExplainResult> Explain(std::string_view key, std::string_view segment,
                                        std::string_view rule);
  // Calls `f` with every profile, shard by shard.
  void ForEachProfile(const std::function<void(ProfileData&&)>& f);

  // Time. Tick fires every timer due by the clock's now, each flip at its exact due
  // time. SetTime is the manual clock's Admin.SetTime: it may not move back.
  void TickAsync(Done<absl::Status> done);
  void SetTimeAsync(int64_t now_ms, Done<absl::Status> done);
  void Tick();
  absl::Status SetTime(int64_t now_ms);
  // The latest time every shard has been advanced to.
  int64_t now() const { return now_.load(std::memory_order_acquire); }

  // Changes (SPEC §4). Reads are synchronous: change logs are thread-safe.
  Cursor CurrentCursor() const;
  // Every current member of the given segments (null: all) and the cursor of the cut.
  void SnapshotAsync(std::shared_ptr<const StringSet> segments, Done<Snapshot> done);
  Snapshot TakeSnapshot(const StringSet* segments);
  // Appends to `out` the changes after `cursor` of the given segments (null: all), at
  // most `max` read per shard, advancing `cursor`. OUT_OF_RANGE when the cursor is from
  // another incarnation or older than a shard's log; INVALID_ARGUMENT when it does not
  // fit this engine. On an error neither `cursor` nor `out` changes.
  absl::Status ReadChanges(Cursor* cursor, size_t max, const StringSet* segments,
                           std::vector<Change>* out) const;
  // The same, calling visit(change) for each change instead (ChangeLog::Read). On an
  // error `cursor` does not change, but changes of the shards before the failing one may
  // have been visited: the caller drops what it made of them.
  absl::Status ReadChanges(Cursor* cursor, size_t max, const StringSet* segments,
                           absl::FunctionRef<void(const ChangeView&)> visit) const;
  // Calls listener(queued) (quick, on a shard's thread) whenever changes are appended to
  // any shard's log; queued: the tasks of that shard waiting to start
  // (ShardExecutor::Queued), so whether more changes may follow at once. Set once, before
  // the engine is shared.
  void SetChangeListener(const std::function<void(size_t queued)>& listener);

  void StatsAsync(Done<EngineStats> done);
  EngineStats Stats();

 private:
  // Runs work(shard) on every shard, then done() after the last, on its thread.
  void ForAllShards(std::function<void(Shard&)> work, absl::AnyInvocable<void() &&> done);
  // A shard brought to the clock's now before it serves anything.
  Shard& Current(Shard& shard) const;
  template <typename Update>  // ProfileUpdate or UpdateRef
  void ApplySpan(std::span<const Update> updates, Done<BatchResult> done);
  template <typename Profile>  // ProfileData or ProfileRef
  void ReplaySpan(std::span<const Profile> profiles, bool quiet, Done<ReplayResult> done);
  // A parsed ad-hoc rule whose in_segment references name existing segments.
  absl::StatusOr<std::unique_ptr<Expr>> ParseQueryRule(std::string_view text)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(catalog_mu_);
  void AdvanceTime(int64_t t, Done<absl::Status> done);

  const EngineOptions options_;
  Clock& clock_;
  InlineExecutor inline_executor_;
  ShardExecutor* const executor_;
  const uint64_t incarnation_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<int64_t> now_;

  // Segment operations and the queries that read the catalog change it or snapshot it
  // and post their shard work under this lock, so every shard sees them in one order.
  mutable absl::Mutex catalog_mu_;
  SegmentCatalog catalog_ ABSL_GUARDED_BY(catalog_mu_);
  absl::Mutex time_mu_;  // serializes SetTime
};

}  // namespace segd
