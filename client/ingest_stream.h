#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "segd/v1/segd.grpc.pb.h"

namespace segd::client {

// One Ingest.Stream call to one shard, kept open for many batches, with a thread that
// reads its Acks (SPEC §2: one Ack per batch, matched by seq; they may come out of
// order).
//
// Each Send writes its batch under a seq of the stream's own and later calls its `done`
// exactly once: with the shard's Ack for it, or — when the call ends first — with how
// it ended ("Ingest.Stream on <address>: ..."); such a batch may or may not have been
// applied. Batches are written in the order of the Send calls.
//
// Thread safety: thread-safe. `done` runs on the reader thread, or on the thread
// calling Send when the call has already ended; it must not call into this stream.
class IngestStream {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<v1::Ack>)>;

  // Starts the call. `stub` must outlive the stream.
  IngestStream(v1::Ingest::Stub& stub, std::string address);
  // Close()s.
  ~IngestStream();
  IngestStream(const IngestStream&) = delete;
  IngestStream& operator=(const IngestStream&) = delete;

  // Writes `batch` (its seq is replaced). Blocks while gRPC flow control holds writes
  // back, that is while the shard has as many batches in hand as it takes.
  void Send(v1::UpdateBatch batch, Done done);

  // True once the call has ended: Send fails at once from then on.
  bool ended() const;

  // Half-closes the call and waits until the shard has acked every batch and ended it,
  // and every `done` has run. OK, or how the call ended (the shard's status, without the
  // address). Idempotent.
  absl::Status Close();

 private:
  void ReadAcks();

  const std::string address_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::UpdateBatch, v1::Ack>> stream_;
  std::thread reader_;

  // Held while writing to stream_ (Write, WritesDone): one write at a time, in order.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Done> pending_ ABSL_GUARDED_BY(mu_);  // written, not acked
  bool closing_ ABSL_GUARDED_BY(mu_) = false;                         // Close was called
  bool ended_ ABSL_GUARDED_BY(mu_) = false;                           // the call is over
  absl::Status end_ ABSL_GUARDED_BY(mu_);                             // how it ended

  absl::Mutex close_mu_;  // one Close joins the reader
};

}  // namespace segd::client
