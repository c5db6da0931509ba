#pragma once

#include <memory>

#include "segd/v1/segd.grpc.pb.h"
#include "server/service_env.h"
#include "server/subscription_hub.h"

namespace segd::server {

class BatchCache;

// segd.v1.Changes (SPEC §4): Subscribe — filter by segments (empty: all, including
// segments defined later), resume after a cursor, or snapshot then live changes with
// the cut's cursor on the snapshot_done batch; a heartbeat at least once a second while
// idle; OUT_OF_RANGE for a cursor the change log no longer holds or of another
// incarnation. A subscriber that stops reading never slows ingest: it falls behind in
// the log and eventually gets OUT_OF_RANGE.
//
// Each call is a reactor (changes_service.cc: Subscription) that holds its cursor and at
// most one batch in flight; a SubscriptionHub's pump thread, woken by the engine's change
// listener, moves it on, and a completed write moves it on directly. The method is raw
// (ByteBuffers): a live batch is serialized once and the same bytes are written to every
// subscription that reads on from the same cursor with the same filter (BatchCache), as
// activators following the stream together do.
//
// Thread safety: thread-safe. The engine's change listener is installed by the
// constructor, so the service must be built before the engine is shared.
class ChangesService final
    : public v1::Changes::WithRawCallbackMethod_Subscribe<v1::Changes::Service> {
 public:
  explicit ChangesService(ServiceEnv& env);
  ~ChangesService() override;

  // `request` is a serialized SubscribeRequest; each message written, a ChangeBatch.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* request) override;

  // Ends every open subscription (UNAVAILABLE: the server is shutting down).
  void FinishAll();

 private:
  ServiceEnv& env_;
  std::unique_ptr<BatchCache> cache_;
  std::unique_ptr<SubscriptionHub> hub_;
};

}  // namespace segd::server
