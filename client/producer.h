#pragma once

#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/cluster.h"
#include "client/ingest_stream.h"
#include "segd/v1/segd.pb.h"

namespace segd::client {

// Streams update batches into a cluster (ClusterClient::NewProducer). Each batch is
// split by the ring: every update goes to its key's shard over one long-lived
// Ingest.Stream per shard, and the shards' Acks are merged back into one Ack for the
// batch — the caller's seq, `applied` summed, and each rejected update reported by its
// index in the caller's batch (sorted by index).
//
// Order: updates of one key reach its shard, and are applied (SPEC §2), in the order of
// the Sends that carried them when each Send returns before the next starts, and in
// batch order within a batch.
//
// Failure: when a shard's stream ends before acking its part of a batch, that batch's
// result is an error naming the shard, its status, and how many of the batch's updates
// went there: those may or may not have been applied; the other shards' parts were
// acked. The next Send with updates for that shard opens a new stream to it.
//
// Thread safety: thread-safe; Sends from several threads interleave in any order.
class Producer {
 public:
  // Close()s.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Sends `batch` and returns its merged Ack, once every shard with a part of it has
  // acked (an empty batch is acked at once). Blocks while max_pending_batches batches
  // are waiting for their Acks, and while a shard's stream holds writes back. After
  // Close the result is FAILED_PRECONDITION.
  std::future<absl::StatusOr<v1::Ack>> Send(v1::UpdateBatch batch);

  // Blocks until every batch sent before the call has its result.
  void Flush();

  // Refuses new batches, waits for the results of those sent, then half-closes every
  // stream and waits for it to end. OK, or which shards' streams ended in failure
  // (ShardErrors). Idempotent: later calls return the first call's status.
  absl::Status Close();

 private:
  friend class ClusterClient;
  struct PendingBatch;
  // One shard's stream, opened by the first Send with updates for it.
  struct Slot {
    absl::Mutex mu;
    std::unique_ptr<IngestStream> stream ABSL_GUARDED_BY(mu);
  };

  explicit Producer(std::shared_ptr<const Cluster> cluster);

  // Runs when `shard` answers for its part of `batch`; `indices[i]` is the index in the
  // caller's batch of update i of that part.
  void OnShardAck(const std::shared_ptr<PendingBatch>& batch, int shard,
                  const std::vector<uint32_t>& indices, absl::StatusOr<v1::Ack> ack);
  void Complete(PendingBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<const Cluster> cluster_;
  std::vector<std::unique_ptr<Slot>> slots_;  // by shard

  absl::Mutex mu_;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;    // numbers the batches sent, in order
  std::set<uint64_t> pending_ ABSL_GUARDED_BY(mu_);  // tickets of batches without result
  bool closed_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex close_mu_;  // one Close at a time
  bool close_done_ ABSL_GUARDED_BY(close_mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(close_mu_);
};

}  // namespace segd::client
