#include "server/ingest_service.h"

namespace segd::server {

grpc::ServerBidiReactor<v1::UpdateBatch, v1::Ack>* IngestService::Stream(grpc::CallbackServerContext* ctx) {
  return nullptr;  // placeholder
}

grpc::ServerUnaryReactor* IngestService::Apply(grpc::CallbackServerContext* ctx, const v1::UpdateBatch* request,
                                  v1::Ack* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerReadReactor<v1::ReplayRequest>* IngestService::Replay(grpc::CallbackServerContext* ctx,
                                                     v1::ReplaySummary* response) {
  return nullptr;  // placeholder
}

}  // namespace segd::server
