#include "client/producer.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/shard_errors.h"

namespace segd::client {

// A batch sent and not yet answered by every shard with a part of it. Its fields are
// guarded by the Producer's mu_.
struct Producer::PendingBatch {
  uint64_t ticket = 0;
  uint64_t seq = 0;  // the caller's
  size_t size = 0;   // updates
  int parts_left = 0;
  v1::Ack ack;                        // merged so far; errors in caller indices
  size_t unacked = 0;                 // updates of the parts whose stream failed
  std::vector<std::string> failures;  // how those streams ended
  absl::StatusCode failure_code = absl::StatusCode::kOk;
  std::promise<absl::StatusOr<v1::Ack>> promise;
};

Producer::Producer(std::shared_ptr<const Cluster> cluster) : cluster_(std::move(cluster)) {
  for (size_t s = 0; s < cluster_->shards.size(); ++s) slots_.push_back(std::make_unique<Slot>());
}

Producer::~Producer() { Close().IgnoreError(); }

std::future<absl::StatusOr<v1::Ack>> Producer::Send(v1::UpdateBatch batch) {
  auto pending = std::make_shared<PendingBatch>();
  pending->seq = batch.seq();
  pending->size = static_cast<size_t>(batch.updates_size());
  pending->ack.set_seq(batch.seq());
  std::future<absl::StatusOr<v1::Ack>> result = pending->promise.get_future();

  // The parts, by shard; indices[s][i] is the caller's index of update i of part s.
  const size_t shards = cluster_->shards.size();
  std::vector<v1::UpdateBatch> parts(shards);
  std::vector<std::vector<uint32_t>> indices(shards);
  for (int i = 0; i < batch.updates_size(); ++i) {
    const int s = cluster_->ring.ShardOf(batch.updates(i).key());
    indices[s].push_back(static_cast<uint32_t>(i));
    *parts[s].add_updates() = std::move(*batch.mutable_updates(i));
  }
  const int nonempty = static_cast<int>(std::count_if(
      parts.begin(), parts.end(), [](const auto& p) { return p.updates_size() > 0; }));

  {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || pending_.size() < cluster_->options.max_pending_batches;
    };
    mu_.Await(absl::Condition(&room));
    if (closed_) {
      pending->promise.set_value(absl::FailedPreconditionError(
          absl::StrCat("batch seq=", batch.seq(), " not sent: the Producer is closed")));
      return result;
    }
    if (nonempty == 0) {
      pending->promise.set_value(pending->ack);
      return result;
    }
    pending->ticket = next_ticket_++;
    pending->parts_left = nonempty;
    pending_.insert(pending->ticket);
  }

  for (size_t s = 0; s < shards; ++s) {
    if (parts[s].updates_size() == 0) continue;
    Slot& slot = *slots_[s];
    absl::MutexLock lock(&slot.mu);
    if (slot.stream == nullptr || slot.stream->ended()) {
      // The ended stream's batches have their results already.
      if (slot.stream != nullptr) slot.stream->Close().IgnoreError();
      slot.stream =
          std::make_unique<IngestStream>(*cluster_->shards[s].ingest, cluster_->shards[s].address);
    }
    slot.stream->Send(std::move(parts[s]),
                      [this, pending, s, idx = std::move(indices[s])](absl::StatusOr<v1::Ack> ack) {
                        OnShardAck(pending, static_cast<int>(s), idx, std::move(ack));
                      });
  }
  return result;
}

void Producer::OnShardAck(const std::shared_ptr<PendingBatch>& batch, int shard,
                          const std::vector<uint32_t>& indices, absl::StatusOr<v1::Ack> ack) {
  absl::MutexLock lock(&mu_);
  PendingBatch& b = *batch;
  if (ack.ok()) {
    for (const v1::UpdateError& e : ack->errors()) {
      if (e.index() >= indices.size()) {
        ack = absl::InternalError(absl::StrCat("Ingest.Stream on ", cluster_->shards[shard].address,
                                               ": Ack reports update ", e.index(),
                                               " of a batch of ", indices.size()));
        break;
      }
    }
  }
  if (ack.ok()) {
    b.ack.set_applied(b.ack.applied() + ack->applied());
    for (v1::UpdateError& e : *ack->mutable_errors()) {
      v1::UpdateError* merged = b.ack.add_errors();
      *merged = std::move(e);
      merged->set_index(indices[merged->index()]);
    }
  } else {
    if (b.failures.empty()) b.failure_code = ack.status().code();
    b.failures.push_back(ack.status().ToString());
    b.unacked += indices.size();
  }
  if (--b.parts_left == 0) Complete(b);
}

void Producer::Complete(PendingBatch& b) {
  auto& errors = *b.ack.mutable_errors();
  std::sort(errors.begin(), errors.end(), [](const v1::UpdateError& x, const v1::UpdateError& y) {
    return x.index() < y.index();
  });
  if (b.failures.empty()) {
    b.promise.set_value(std::move(b.ack));
  } else {
    b.promise.set_value(
        absl::Status(b.failure_code,
                     absl::StrCat("batch seq=", b.seq, ": ", b.unacked, " of its ", b.size,
                                  " updates were not acked and may or may not have been applied (",
                                  absl::StrJoin(b.failures, "; "), "); the other ",
                                  b.size - b.unacked, " were acked: ", b.ack.applied(),
                                  " applied, ", b.ack.errors_size(), " rejected")));
  }
  pending_.erase(b.ticket);
}

void Producer::Flush() {
  absl::MutexLock lock(&mu_);
  const uint64_t sent = next_ticket_;
  auto answered = [this, sent]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_.empty() || *pending_.begin() >= sent;
  };
  mu_.Await(absl::Condition(&answered));
}

absl::Status Producer::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (close_done_) return close_status_;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  Flush();
  ShardErrors errors("Ingest.Stream", cluster_->shards.size());
  for (size_t s = 0; s < slots_.size(); ++s) {
    absl::MutexLock lock(&slots_[s]->mu);
    std::unique_ptr<IngestStream>& stream = slots_[s]->stream;
    if (stream == nullptr) continue;
    const absl::Status status = stream->Close();
    // The stream's status already names its shard.
    if (!status.ok()) errors.Add(cluster_->shards[s].address, status);
    stream.reset();
  }
  close_done_ = true;
  close_status_ = errors.ToStatus();
  return close_status_;
}

}  // namespace segd::client
