#include "client/ingest_stream.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/shard_errors.h"

namespace segd::client {

IngestStream::IngestStream(v1::Ingest::Stub& stub, std::string address)
    : address_(std::move(address)) {
  // Corked, the call's metadata goes out with the first write instead of being sent
  // (and waited for) here.
  context_.set_initial_metadata_corked(true);
  stream_ = stub.Stream(&context_);
  reader_ = std::thread([this] { ReadAcks(); });
}

IngestStream::~IngestStream() { Close().IgnoreError(); }

void IngestStream::Send(v1::UpdateBatch batch, Done done) {
  absl::MutexLock write_lock(&write_mu_);
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (ended_) {
      refused = AtShard("Ingest.Stream", address_,
                        end_.ok() ? absl::UnavailableError("the call has ended") : end_);
    } else if (closing_) {
      refused =
          AtShard("Ingest.Stream", address_, absl::FailedPreconditionError("the stream is closed"));
    } else {
      batch.set_seq(next_seq_++);
      pending_.emplace(batch.seq(), std::move(done));
    }
  }
  if (!refused.ok()) {
    done(refused);
    return;
  }
  // A failed write means the call is over: the reader then fails every pending batch.
  stream_->Write(batch);
}

bool IngestStream::ended() const {
  absl::MutexLock lock(&mu_);
  return ended_;
}

absl::Status IngestStream::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (reader_.joinable()) {
    {
      absl::MutexLock write_lock(&write_mu_);
      bool half_close = false;
      {
        absl::MutexLock lock(&mu_);
        half_close = !closing_ && !ended_;
        closing_ = true;
      }
      if (half_close) stream_->WritesDone();
    }
    reader_.join();
  }
  absl::MutexLock lock(&mu_);
  return end_;
}

void IngestStream::ReadAcks() {
  absl::Status broken;  // this side's reason to end the call, if any
  v1::Ack ack;
  while (stream_->Read(&ack)) {
    Done done;
    {
      absl::MutexLock lock(&mu_);
      auto it = pending_.find(ack.seq());
      if (it != pending_.end()) {
        done = std::move(it->second);
        pending_.erase(it);
      }
    }
    if (!done) {
      broken = absl::InternalError(
          absl::StrCat("Ack for seq ", ack.seq(), ", which is not a batch in flight"));
      context_.TryCancel();
      while (stream_->Read(&ack)) {
      }
      break;
    }
    done(std::move(ack));
  }
  {
    absl::MutexLock lock(&mu_);
    ended_ = true;  // no write starts from now on
  }
  { absl::MutexLock write_lock(&write_mu_); }  // and the one in progress (if any) is over

  const absl::Status finished = FromGrpc(stream_->Finish());
  const absl::Status end = broken.ok() ? finished : broken;
  std::vector<Done> unacked;
  {
    absl::MutexLock lock(&mu_);
    end_ = end;
    for (auto& [seq, done] : pending_) unacked.push_back(std::move(done));
    pending_.clear();
  }
  if (unacked.empty()) return;
  const absl::Status failure =
      AtShard("Ingest.Stream", address_,
              !end.ok() ? end : absl::InternalError("the call ended (OK) before acking a batch"));
  for (Done& done : unacked) done(failure);
}

}  // namespace segd::client
