#pragma once

#include <grpcpp/client_context.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/cluster.h"
#include "segd/v1/segd.pb.h"

namespace segd::client {

// One step of a merged subscription (Subscription::Next): a batch of changes from one
// shard, or a notice about one shard.
struct MergedBatch {
  enum class Kind {
    // `batch` holds changes of `shard`, in its order (none: a heartbeat).
    kChanges,
    // `shard`'s state is sent again from scratch: forget every membership received
    // from it (its keys are those Ring::ShardOf maps to it). Its current members follow
    // as ENTERs with cause SNAPSHOT, up to a batch with shard_snapshot_done; `reason`
    // says why: its cursor was out of range (it restarted, or this subscriber fell
    // further behind than its change log holds), or its stream broke mid-snapshot.
    kResnapshot,
    // `shard`'s stream broke, or could not be opened (`reason`); it is tried again after
    // a backoff, resuming after the last batch received from it, so nothing is lost.
    // One notice per failed attempt, while the shard stays unreachable.
    kReconnecting,
  };

  Kind kind = Kind::kChanges;
  int shard = 0;        // index in ClusterClient::servers()
  std::string address;  // that server
  absl::Status reason;  // kResnapshot, kReconnecting: why
  // kChanges: the (re-)snapshot of `shard` is complete with this batch.
  bool shard_snapshot_done = false;
  // changes: `shard`'s changes (kChanges only).
  // cursor: the merged cursor (ClusterCursor) after this step, which resumes the
  //   subscription with exactly the steps after it. Empty until every shard's position
  //   is known: during the initial snapshot, and for a subscription "from now" until
  //   every shard has answered.
  // snapshot_done: the initial snapshot (SubscribeRequest.snapshot) is complete on every
  //   shard with this step.
  v1::ChangeBatch batch;
};

// A change-stream subscription to every shard of a cluster (SPEC §4, §6), merged into
// one sequence of steps (MergedBatch) — ClusterClient::Subscribe.
//
// Each shard's changes come in that shard's order; no order is promised across shards
// (a key lives on one shard). Each shard has its own stream, read by a thread of its
// own into a small queue, so a caller that stops calling Next holds every shard back
// and, past its change log's capacity, gets a kResnapshot of it. A stream that breaks
// is reopened after a backoff from the last cursor received from it; a shard whose
// cursor is out of range is re-snapshot on its own and the caller told so. The merged
// cursor advances for a shard only with the steps Next returned, so resuming from the
// cursor of a step loses and repeats nothing.
//
// Thread safety: Next may be called from one thread at a time; Cancel from any thread.
class Subscription {
 public:
  // Cancel()s and waits for the shard threads.
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // The next step. DEADLINE_EXCEEDED if none came by `deadline` (the subscription goes
  // on); CANCELLED once Cancel was called; a shard's error that retrying cannot fix
  // (e.g. INVALID_ARGUMENT for a malformed segment id), naming the shard, ends the
  // subscription and is returned from then on.
  absl::StatusOr<MergedBatch> Next(absl::Time deadline = absl::InfiniteFuture());

  // Ends every stream; Next returns CANCELLED from now on. Idempotent.
  void Cancel();

 private:
  friend class ClusterClient;

  // Where a shard's stream starts, and what the merged cursor holds for it.
  struct Position {
    enum class State {
      kUnknown,   // no cursor yet: from now, or in the initial snapshot
      kCursor,    // after `cursor`
      kSnapshot,  // re-snapshot it
    };
    State state = State::kUnknown;
    std::string cursor;
  };

  // A step as a shard thread queues it; an error ends the subscription.
  struct Step {
    MergedBatch batch;
    absl::Status error;
  };

  // The calls of one shard thread, as the watchdog and Cancel see them.
  struct Link {
    grpc::ClientContext* context = nullptr;  // the call in progress
    bool waiting = false;                    // on the call: connecting, or in Read
    absl::Time since;                        // when it started waiting or last got a batch
    bool idle_cancelled = false;             // the watchdog cancelled the call
    size_t queued = 0;                       // its steps in queue_
  };

  // REQUIRES: positions has one entry per shard.
  Subscription(std::shared_ptr<const Cluster> cluster, const v1::SubscribeRequest& request,
               std::vector<Position> positions);
  void Start();

  void RunShard(int shard, Position start);
  // Runs the watchdog: cancels calls that brought nothing for idle_timeout.
  void Watch();

  // Queues a step of `shard`, waiting while its queue is full; false once stopping.
  bool Push(int shard, Step step);
  bool Push(int shard, MergedBatch::Kind kind, absl::Status reason);
  // Registers the call `context` of `shard` (waiting); false once stopping.
  bool BeginCall(int shard, grpc::ClientContext* context);
  // Unregisters it; returns whether the watchdog cancelled it.
  bool EndCall(int shard);
  // Waits `pause` unless stopping first; false once stopping.
  bool Pause(absl::Duration pause);
  void StopLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool stopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !end_.ok(); }
  std::string MergedCursorLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<const Cluster> cluster_;
  const v1::SubscribeRequest request_;  // segments and snapshot; no cursor
  const std::vector<Position> start_;

  absl::Mutex mu_;
  absl::Status end_ ABSL_GUARDED_BY(mu_);  // not OK once the subscription is over
  std::deque<std::pair<int, Step>> queue_ ABSL_GUARDED_BY(mu_);  // (shard, step)
  std::vector<Link> links_ ABSL_GUARDED_BY(mu_);
  // The consumer's side: what the steps Next returned amount to.
  std::vector<Position> delivered_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> in_initial_snapshot_ ABSL_GUARDED_BY(mu_);
  size_t initial_snapshots_left_ ABSL_GUARDED_BY(mu_) = 0;

  std::vector<std::thread> threads_;
};

}  // namespace segd::client
