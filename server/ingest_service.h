#pragma once

#include "segd/v1/segd.grpc.pb.h"
#include "server/service_env.h"

namespace segd::server {

// segd.v1.Ingest (SPEC §2, §5): Stream (one Ack per batch, once it is applied and its
// changes are in the change log), Apply, Replay (client streaming; error indexes count
// across the whole stream; `quiet` is read from the first message).
class IngestService final : public v1::Ingest::CallbackService {
 public:
  explicit IngestService(ServiceEnv& env) : env_(env) {}

  grpc::ServerBidiReactor<v1::UpdateBatch, v1::Ack>* Stream(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Apply(grpc::CallbackServerContext* ctx, const v1::UpdateBatch* request,
                                  v1::Ack* response) override;
  grpc::ServerReadReactor<v1::ReplayRequest>* Replay(grpc::CallbackServerContext* ctx,
                                                     v1::ReplaySummary* response) override;

 private:
  ServiceEnv& env_;
};

}  // namespace segd::server
