#include "client/subscription.h"

#include <grpcpp/support/sync_stream.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/cluster_cursor.h"
#include "client/shard_errors.h"

namespace segd::client {
namespace {

// Steps one shard may have waiting for Next: past them its thread stops reading, so a
// slow caller holds back at most this many batches (each at most 4096 changes) per shard.
constexpr size_t kMaxQueuedSteps = 4;

// How a shard's stream can end and be retried by reopening it; other codes (a malformed
// request, a missing permission, ...) would only fail again. OUT_OF_RANGE is handled
// apart: it calls for a re-snapshot.
bool Retryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:  // a server is not meant to end a subscription
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

// Exponential backoff with ±20% jitter, so that subscribers of a shard that restarts
// do not all come back at the same moment.
class Backoff {
 public:
  Backoff(absl::Duration min, absl::Duration max)
      : min_(min), max_(std::max(min, max)), next_(min), rng_(std::random_device{}()) {}

  absl::Duration Next() {
    const absl::Duration pause = next_ * std::uniform_real_distribution<double>(0.8, 1.2)(rng_);
    next_ = std::min(next_ * 2, max_);
    return pause;
  }

  void Reset() { next_ = min_; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  absl::Duration next_;
  std::mt19937 rng_;
};

}  // namespace

Subscription::Subscription(std::shared_ptr<const Cluster> cluster,
                           const v1::SubscribeRequest& request, std::vector<Position> positions)
    : cluster_(std::move(cluster)), request_(request), start_(std::move(positions)) {
  const size_t n = cluster_->shards.size();
  links_.resize(n);
  delivered_ = start_;
  in_initial_snapshot_.assign(n, request_.snapshot());
  initial_snapshots_left_ = request_.snapshot() ? n : 0;
}

void Subscription::Start() {
  for (size_t s = 0; s < start_.size(); ++s) {
    threads_.emplace_back([this, s] { RunShard(static_cast<int>(s), start_[s]); });
  }
  if (cluster_->options.idle_timeout != absl::InfiniteDuration()) {
    threads_.emplace_back([this] { Watch(); });
  }
}

Subscription::~Subscription() {
  Cancel();
  for (std::thread& t : threads_) t.join();
}

void Subscription::Cancel() {
  absl::MutexLock lock(&mu_);
  StopLocked(absl::CancelledError("subscription cancelled"));
}

void Subscription::StopLocked(absl::Status why) {
  if (stopping()) return;
  end_ = std::move(why);
  for (Link& link : links_) {
    if (link.context != nullptr) link.context->TryCancel();
  }
}

absl::StatusOr<MergedBatch> Subscription::Next(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping() || !queue_.empty(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) {
    return absl::DeadlineExceededError("no change from any shard before the deadline");
  }
  if (stopping()) return end_;
  auto [s, step] = std::move(queue_.front());
  queue_.pop_front();
  --links_[s].queued;
  if (!step.error.ok()) {
    StopLocked(step.error);
    return step.error;
  }

  MergedBatch& out = step.batch;
  Position& position = delivered_[s];
  bool initial_snapshot_done = false;
  switch (out.kind) {
    case MergedBatch::Kind::kChanges:
      if (!out.batch.cursor().empty()) {
        position.state = Position::State::kCursor;
        position.cursor = out.batch.cursor();
      }
      if (out.shard_snapshot_done && in_initial_snapshot_[s]) {
        in_initial_snapshot_[s] = false;
        initial_snapshot_done = --initial_snapshots_left_ == 0;
      }
      break;
    case MergedBatch::Kind::kResnapshot:
      // In the initial phase the merged cursor is empty anyway until the shard is done.
      if (position.state != Position::State::kUnknown) {
        position.state = Position::State::kSnapshot;
        position.cursor.clear();
      }
      break;
    case MergedBatch::Kind::kReconnecting:
      break;
  }
  out.batch.set_snapshot_done(initial_snapshot_done);
  out.batch.set_cursor(MergedCursorLocked());
  return std::move(out);
}

std::string Subscription::MergedCursorLocked() const {
  ClusterCursor cursor;
  for (size_t s = 0; s < delivered_.size(); ++s) {
    const Position& p = delivered_[s];
    if (p.state == Position::State::kUnknown) return "";
    cursor.shards.push_back(ClusterCursor::Shard{cluster_->shards[s].address, p.cursor});
  }
  return cursor.Encode();
}

// One shard's stream, reopened until the subscription stops: from `cursor` (the last
// received), or with a snapshot (`snapshot`) until one is complete.
void Subscription::RunShard(int s, Position start) {
  const ShardStubs& shard = cluster_->shards[s];
  const ClusterOptions& options = cluster_->options;
  std::string cursor;
  bool snapshot = false;
  switch (start.state) {
    case Position::State::kUnknown:
      snapshot = request_.snapshot();
      break;
    case Position::State::kCursor:
      cursor = start.cursor;
      break;
    case Position::State::kSnapshot:
      snapshot = true;
      if (!Push(s, MergedBatch::Kind::kResnapshot,
                AtShard("Changes.Subscribe", shard.address,
                        absl::FailedPreconditionError(
                            "the cursor holds no position for this shard: it was taken while "
                            "the shard was being re-snapshot")))) {
        return;
      }
      break;
  }

  Backoff backoff(options.reconnect_min_backoff, options.reconnect_max_backoff);
  while (true) {
    // request_.snapshot asks for the initial snapshot only: once it is complete, the
    // stream resumes from its cursor (the server ignores a cursor with snapshot set).
    v1::SubscribeRequest request = request_;
    request.set_snapshot(snapshot);
    if (!snapshot) request.set_cursor(cursor);
    grpc::ClientContext context;
    if (!BeginCall(s, &context)) return;
    std::unique_ptr<grpc::ClientReader<v1::ChangeBatch>> reader =
        shard.changes->Subscribe(&context, request);
    bool received = false;          // a batch came on this call
    bool partial_snapshot = false;  // part of a snapshot came, not its end
    v1::ChangeBatch batch;
    while (reader->Read(&batch)) {
      received = true;
      Step step;
      step.batch.kind = MergedBatch::Kind::kChanges;
      step.batch.shard = s;
      step.batch.address = shard.address;
      if (snapshot) {
        if (batch.snapshot_done()) {
          snapshot = false;
          partial_snapshot = false;
          cursor = batch.cursor();
          step.batch.shard_snapshot_done = true;
        } else {
          partial_snapshot = true;
        }
      } else if (!batch.cursor().empty()) {
        cursor = batch.cursor();
      }
      step.batch.batch = std::move(batch);
      batch.Clear();
      if (!Push(s, std::move(step))) {
        context.TryCancel();
        while (reader->Read(&batch)) {
        }
        break;
      }
    }
    const grpc::Status finished = reader->Finish();
    const bool idle = EndCall(s);
    {
      absl::MutexLock lock(&mu_);
      if (stopping()) return;
    }

    absl::Status why =
        idle ? absl::UnavailableError(absl::StrCat("no batch or heartbeat for ",
                                                   absl::FormatDuration(options.idle_timeout)))
             : FromGrpc(finished);
    if (why.ok()) why = absl::UnavailableError("the server ended the stream");
    why = AtShard("Changes.Subscribe", shard.address, why);
    if (received) backoff.Reset();

    if (why.code() == absl::StatusCode::kOutOfRange && !request.snapshot()) {
      // The shard cannot serve the cursor: take its state afresh, at once.
      snapshot = true;
      cursor.clear();
      if (!Push(s, MergedBatch::Kind::kResnapshot, why)) return;
      continue;
    }
    if (!Retryable(why.code())) {
      Push(s, Step{MergedBatch{}, why});
      return;
    }
    if (!Push(s, MergedBatch::Kind::kReconnecting, why)) return;
    // A snapshot cut short starts over: what came of it is void.
    if (partial_snapshot && !Push(s, MergedBatch::Kind::kResnapshot, why)) return;
    if (!Pause(backoff.Next())) return;
  }
}

void Subscription::Watch() {
  const absl::Duration timeout = cluster_->options.idle_timeout;
  const absl::Duration tick = std::min(timeout / 4, absl::Seconds(1));
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(this, &Subscription::stopping), tick)) {
    const absl::Time now = absl::Now();
    for (Link& link : links_) {
      if (link.waiting && link.context != nullptr && !link.idle_cancelled &&
          now - link.since > timeout) {
        link.idle_cancelled = true;
        link.context->TryCancel();
      }
    }
  }
}

bool Subscription::Push(int s, Step step) {
  absl::MutexLock lock(&mu_);
  Link& link = links_[s];
  const bool was_waiting = link.waiting;
  link.waiting = false;  // a full queue is not an idle stream
  auto room = [this, &link]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping() || link.queued < kMaxQueuedSteps;
  };
  mu_.Await(absl::Condition(&room));
  if (stopping()) return false;
  queue_.emplace_back(s, std::move(step));
  ++link.queued;
  link.waiting = was_waiting;
  link.since = absl::Now();
  return true;
}

bool Subscription::Push(int s, MergedBatch::Kind kind, absl::Status reason) {
  Step step;
  step.batch.kind = kind;
  step.batch.shard = s;
  step.batch.address = cluster_->shards[s].address;
  step.batch.reason = std::move(reason);
  return Push(s, std::move(step));
}

bool Subscription::BeginCall(int s, grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (stopping()) return false;
  links_[s].context = context;
  links_[s].waiting = true;
  links_[s].since = absl::Now();
  links_[s].idle_cancelled = false;
  return true;
}

bool Subscription::EndCall(int s) {
  absl::MutexLock lock(&mu_);
  Link& link = links_[s];
  link.context = nullptr;
  link.waiting = false;
  return link.idle_cancelled;
}

bool Subscription::Pause(absl::Duration pause) {
  absl::MutexLock lock(&mu_);
  return !mu_.AwaitWithTimeout(absl::Condition(this, &Subscription::stopping), pause);
}

}  // namespace segd::client
