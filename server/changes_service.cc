#include "server/changes_service.h"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/cursor.h"
#include "core/segment_catalog.h"
#include "core/text.h"
#include "server/convert.h"
#include "server/wire_writer.h"

namespace segd::server {
namespace {

// At most this many changes in one ChangeBatch, so that a subscriber holds a bounded
// batch however far behind it is.
constexpr size_t kMaxBatchChanges = 4096;
// Changes read from one shard's log at a time (ChangeLog::Read holds the log's lock).
constexpr size_t kReadChunk = 256;
// An idle subscription sends an empty batch this often (SPEC §4: at least once a second).
constexpr absl::Duration kHeartbeatInterval = absl::Milliseconds(500);
// How often the pump looks for due heartbeats when no change wakes it.
constexpr absl::Duration kPollInterval = absl::Milliseconds(100);
// How long a change may wait for the pump behind a shard's backlog (SubscriptionHub's
// pacing): under load, subscribers get a batch this often rather than one per shard
// batch.
constexpr absl::Duration kPacingInterval = absl::Milliseconds(2);

// Live batches are kept for sharing while they may still be asked for: subscriptions
// that follow the stream together are at most a few batches apart.
constexpr size_t kCachedBatches = 16;

}  // namespace

// The most recent live batches, serialized, by where they start and which segments they
// hold: a subscription at the same cursor with the same filter takes the same bytes
// (ByteBuffer copies share their slices) and moves its cursor to where they end. What it
// gets is what it would have read itself a little earlier: the changes after its cursor,
// in order, none skipped; later ones come in its next batch.
//
// Thread safety: thread-safe.
class BatchCache {
 public:
  struct Batch {
    grpc::ByteBuffer bytes;
    Cursor end;
  };

  std::optional<Batch> Find(const std::string& filter, const Cursor& from) {
    absl::MutexLock lock(&mu_);
    for (const Entry& e : entries_) {
      if (e.from == from && e.filter == filter) return e.batch;
    }
    return std::nullopt;
  }

  void Put(const std::string& filter, const Cursor& from, const Batch& batch) {
    absl::MutexLock lock(&mu_);
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    e.filter = filter;
    e.from = from;
    e.batch = batch;
  }

 private:
  struct Entry {
    std::string filter;
    Cursor from;
    Batch batch;
  };

  absl::Mutex mu_;
  std::array<Entry, kCachedBatches> entries_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
};

namespace {

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  const grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The sorted segment ids of a filter, one string: equal filters, equal strings ("" for
// all segments).
std::string FilterSignature(const StringSet* segments) {
  if (segments == nullptr) return "";
  std::vector<std::string_view> ids(segments->begin(), segments->end());
  std::sort(ids.begin(), ids.end());
  std::string signature;
  for (std::string_view id : ids) signature.append("\n").append(id);
  return signature;
}

// A Subscribe call refused before it started.
class Rejection final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit Rejection(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// One Subscribe call. It goes through three phases:
//   kSnapshotPending  waiting for Engine::SnapshotAsync (snapshot = true only);
//   kSnapshot         sending the snapshot's members, kMaxBatchChanges a batch with no
//                     cursor, then an empty batch with snapshot_done and the cut's cursor;
//   kLive             sending the changes after cursor_, each batch with the cursor after
//                     it, or a heartbeat (no changes, cursor_) when idle.
// It keeps at most one write in flight (batch_). Advance() starts the next one, called
// from the pump (Poll) and when a write completes (OnWriteDone).
//
// Lifetime: shared. self_ keeps the call alive until OnDone(), which drops it and leaves
// the hub's registry; the pump's pass and a pending snapshot callback hold references of
// their own, so the object may outlive OnDone() briefly. gRPC is only called (StartWrite,
// Finish) under mu_ and before finished_ is set; OnDone() comes only after Finish(), so
// nothing touches the call once it is done. Finish() waits for the write in flight.
class Subscription final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                           public SubscriptionHub::Subscriber {
 public:
  Subscription(Engine& engine, SubscriptionHub& hub, BatchCache& cache,
               std::shared_ptr<const StringSet> segments)
      : engine_(engine),
        hub_(hub),
        cache_(cache),
        wakeup_(hub.wakeup()),
        segments_(std::move(segments)),
        filter_(FilterSignature(segments_.get())),
        read_chunk_(std::clamp<size_t>(kMaxBatchChanges / engine.num_shards(), 1, kReadChunk)) {}

  // Registers `self` with the hub and starts it: from `cursor`, or (no cursor) with a
  // snapshot. Returns the reactor for gRPC.
  static Subscription* Start(std::shared_ptr<Subscription> self, std::optional<Cursor> cursor) {
    Subscription* s = self.get();
    const bool snapshot = !cursor.has_value();
    s->self_ = self;
    if (!snapshot) {
      absl::MutexLock lock(&s->mu_);
      s->cursor_ = *std::move(cursor);
      s->phase_ = Phase::kLive;
    }
    if (!s->hub_.Add(self)) {
      s->End(ShuttingDown());
      return s;
    }
    if (snapshot) {
      s->engine_.SnapshotAsync(
          s->segments_, [self](Snapshot snap) mutable { self->OnSnapshot(std::move(snap)); });
    }
    return s;
  }

  // Finishes the call with `status` once the write in flight (if any) completes.
  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (writing_) {
      if (!finishing_.has_value()) finishing_ = status;
      return;
    }
    FinishLocked(status);
  }

  void Poll(absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Advance(now);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {  // the call is cancelled or broken: nothing more can be written
      if (!finished_) {
        FinishLocked(finishing_.value_or(
            grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled")));
      }
      return;
    }
    if (phase_ == Phase::kLive && !catching_up_ && !finishing_.has_value()) {
      // What came during the write goes with what comes next, on the pump's pass.
      wakeup_->NotifyPaced();
      return;
    }
    Advance(absl::Now());
  }

  void OnCancel() override {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled"));
  }

  void OnDone() override {
    std::shared_ptr<Subscription> self = std::move(self_);  // may free this on return
    hub_.Remove(this);
  }

 private:
  enum class Phase { kSnapshotPending, kSnapshot, kLive };

  // On a shard thread: keep the snapshot and let the pump send it.
  void OnSnapshot(Snapshot snap) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || finishing_.has_value()) return;
      cursor_ = std::move(snap.cursor);
      snapshot_ = std::move(snap);
      snapshot_next_ = Snapshot::Position();
      phase_ = Phase::kSnapshot;
    }
    wakeup_->Notify();
  }

  // Starts the next write if one is due and none is in flight.
  void Advance(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return;
    if (finishing_.has_value()) {
      FinishLocked(*finishing_);
      return;
    }
    switch (phase_) {
      case Phase::kSnapshotPending:
        return;
      case Phase::kSnapshot:
        NextSnapshotBatch();
        break;
      case Phase::kLive:
        if (!NextLiveBatch(now)) return;
        break;
    }
    writing_ = true;
    last_write_ = now;
    StartWrite(&out_);
  }

  void NextSnapshotBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string batch;
    std::vector<Change> changes;
    if (snapshot_.Read(&snapshot_next_, kMaxBatchChanges, &changes) > 0) {
      for (const Change& c : changes) wire::AppendBatchChange(ChangeView(c), &batch);
    } else {
      wire::AppendBatchEnd(CursorToBytes(cursor_), /*snapshot_done=*/true, &batch);
      snapshot_ = Snapshot();
      phase_ = Phase::kLive;
    }
    out_ = ToByteBuffer(batch);
  }

  // Sets out_ to the changes after cursor_ — a batch another subscription already read
  // from there, or one read now — or to a heartbeat when none came for a while; false
  // when there is nothing to send (or the call was finished).
  bool NextLiveBatch(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (std::optional<BatchCache::Batch> shared = cache_.Find(filter_, cursor_)) {
      out_ = std::move(shared->bytes);
      cursor_ = std::move(shared->end);
      catching_up_ = false;
      return true;
    }
    const Cursor from = cursor_;
    // The changes are written to the batch's wire bytes as they are read, straight from
    // the logs' pages: no Change or protobuf message is built for them.
    std::string batch;
    size_t changes = 0;
    const auto add = [&](const ChangeView& c) {
      wire::AppendBatchChange(c, &batch);
      ++changes;
    };
    // Reads in chunks, so that a log's lock (which its shard's appends wait for) is held
    // only briefly, until the batch is full or the logs are exhausted. Changes of other
    // segments count toward a chunk as read, so a filtered subscription reads on past
    // them rather than wait for a wakeup with unread changes.
    bool progress = false;
    do {
      const std::vector<uint64_t> before = cursor_.positions;
      const absl::Status read = engine_.ReadChanges(&cursor_, read_chunk_, segments_.get(), add);
      if (!read.ok()) {
        FinishLocked(ToGrpcStatus(read));
        return false;
      }
      progress = cursor_.positions != before;
    } while (progress && changes + read_chunk_ * cursor_.positions.size() <= kMaxBatchChanges);
    catching_up_ = progress;  // the batch is full, not the logs read to their end
    if (changes == 0 && now - last_write_ < kHeartbeatInterval) return false;
    wire::AppendBatchEnd(CursorToBytes(cursor_), /*snapshot_done=*/false, &batch);
    out_ = ToByteBuffer(batch);
    if (changes > 0) cache_.Put(filter_, from, {out_, cursor_});
    return true;
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    finished_ = true;
    snapshot_ = Snapshot();
    Finish(status);
  }

  Engine& engine_;
  SubscriptionHub& hub_;
  BatchCache& cache_;
  const std::shared_ptr<SubscriptionHub::Wakeup> wakeup_;
  const std::shared_ptr<const StringSet> segments_;  // null: all
  const std::string filter_;                         // FilterSignature(segments_)
  const size_t read_chunk_;                          // changes read per shard at a time
  std::shared_ptr<Subscription> self_;

  absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kSnapshotPending;
  Cursor cursor_ ABSL_GUARDED_BY(mu_);
  Snapshot snapshot_ ABSL_GUARDED_BY(mu_);  // kSnapshot: the members still to send
  Snapshot::Position snapshot_next_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer out_ ABSL_GUARDED_BY(mu_);  // the write in flight: a ChangeBatch
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool catching_up_ ABSL_GUARDED_BY(mu_) = false;  // the last live batch stopped full
  // The live phase starts with a batch at once: the subscriber learns its cursor.
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::optional<grpc::Status> finishing_ ABSL_GUARDED_BY(mu_);  // Finish after the write
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

ChangesService::ChangesService(ServiceEnv& env)
    : env_(env),
      cache_(std::make_unique<BatchCache>()),
      hub_(std::make_unique<SubscriptionHub>(env.engine, kPollInterval, kPacingInterval)) {}

ChangesService::~ChangesService() = default;

void ChangesService::FinishAll() {
  for (const std::shared_ptr<SubscriptionHub::Subscriber>& s : hub_->Close()) {
    static_cast<Subscription&>(*s).End(ShuttingDown());  // the hub holds only these
  }
}

// The request is checked before anything starts: a malformed segment id or cursor is
// INVALID_ARGUMENT, and a cursor this server cannot serve (another incarnation, older
// than a change log) is OUT_OF_RANGE at once. With snapshot = true the snapshot's cut
// is where the stream starts, and a (well-formed) cursor is ignored.
grpc::ServerWriteReactor<grpc::ByteBuffer>* ChangesService::Subscribe(
    grpc::CallbackServerContext* /*ctx*/, const grpc::ByteBuffer* request_bytes) {
  if (env_.draining.load()) return new Rejection(ShuttingDown());

  v1::SubscribeRequest request;
  grpc::ByteBuffer copy(*request_bytes);  // shares the slices; Deserialize consumes it
  if (!grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&copy, &request).ok()) {
    return new Rejection(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      "SubscribeRequest: not a valid protobuf message"));
  }

  std::shared_ptr<StringSet> segments;
  if (!request.segments().empty()) {
    segments = std::make_shared<StringSet>();
    for (const std::string& id : request.segments()) {
      if (absl::Status s = ValidateSegmentId(id); !s.ok()) return new Rejection(ToGrpcStatus(s));
      segments->insert(id);
    }
  }

  std::optional<Cursor> cursor;
  if (!request.cursor().empty()) {
    absl::StatusOr<Cursor> decoded = CursorFromBytes(request.cursor());
    if (!decoded.ok()) return new Rejection(ToGrpcStatus(decoded.status()));
    cursor = *std::move(decoded);
  }
  if (request.snapshot()) {
    cursor.reset();
  } else if (!cursor.has_value()) {
    cursor = env_.engine.CurrentCursor();
  } else {
    // Reading nothing checks that every shard's log still holds the cursor's position.
    Cursor probe = *cursor;
    std::vector<Change> none;
    if (absl::Status s = env_.engine.ReadChanges(&probe, 0, nullptr, &none); !s.ok()) {
      return new Rejection(ToGrpcStatus(s));
    }
  }

  auto subscription =
      std::make_shared<Subscription>(env_.engine, *hub_, *cache_, std::move(segments));
  return Subscription::Start(std::move(subscription), std::move(cursor));
}

}  // namespace segd::server
