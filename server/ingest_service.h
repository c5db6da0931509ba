#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/engine.h"
#include "segd/v1/segd.grpc.pb.h"
#include "server/service_env.h"

namespace segd::server {

// segd.v1.Ingest (SPEC §2, §5): Stream (one Ack per batch, once it is applied and its
// changes are in the change log), Apply, Replay (client streaming; error indexes count
// across the whole stream; `quiet` is read from the first message). Stream and Replay
// take their messages as bytes and decode them themselves (wire_decode.h); to clients
// they are the same methods, with the same messages.
class IngestService final
    : public v1::Ingest::WithRawCallbackMethod_Stream<v1::Ingest::WithCallbackMethod_Apply<
          v1::Ingest::WithRawCallbackMethod_Replay<v1::Ingest::Service>>> {
 public:
  explicit IngestService(ServiceEnv& env) : env_(env) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Apply(grpc::CallbackServerContext* ctx, const v1::UpdateBatch* request,
                                  v1::Ack* response) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* Replay(grpc::CallbackServerContext* ctx,
                                                    grpc::ByteBuffer* response) override;

  // Drain: every open Stream finishes with UNAVAILABLE once its pending Acks are written,
  // every open Replay once its messages in the engine are replayed — even a call that is
  // idle, waiting for its client's next message.
  // REQUIRES: env.draining is set.
  void FinishAll();

 private:
  // An open Stream or Replay call, reference counted: gRPC holds one reference until
  // OnDone, and whoever may touch the call after that (an engine `done`, FinishAll)
  // holds one of its own. The last reference deletes the call.
  class DrainableCall {
   public:
    virtual ~DrainableCall() = default;
    // The server drains: finish as soon as nothing is owed to the client.
    // REQUIRES: the caller holds a reference.
    virtual void Drain() = 0;
    void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    void Unref() {
      if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

   private:
    std::atomic<int> refs_{1};
  };

  // The reactors of Stream and Replay, one per call (defined in ingest_service.cc).
  class StreamReactor;
  class ReplayReactor;

  void Register(DrainableCall* call);
  void Unregister(DrainableCall* call);

  // Rejected input is logged as one warning line per second at most (per service, that
  // is per server), with the number of updates rejected since the previous line and one
  // of them as an example, so that a producer sending garbage cannot flood the log.
  // Updates rejected after the last line are counted into the next one.
  //
  // Thread safety: Record may be called from any thread; it never waits on I/O under
  // its lock.
  class RejectLog {
   public:
    // Records the rejected updates of one batch (or Replay message). `rpc` names the
    // call in the log line; an empty `errors` records nothing.
    void Record(std::string_view rpc, std::span<const UpdateError> errors);

   private:
    absl::Mutex mu_;
    uint64_t unlogged_ ABSL_GUARDED_BY(mu_) = 0;
    absl::Time last_line_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  };

  ServiceEnv& env_;
  RejectLog rejects_;
  absl::Mutex calls_mu_;
  absl::flat_hash_set<DrainableCall*> calls_ ABSL_GUARDED_BY(calls_mu_);  // open Streams, Replays
};

}  // namespace segd::server
