#include "server/admin_service.h"

namespace segd::server {

grpc::ServerUnaryReactor* AdminService::SetTime(grpc::CallbackServerContext* ctx,
                                    const v1::SetTimeRequest* request,
                                    v1::SetTimeResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* ctx,
                                     const v1::GetStatsRequest* request, v1::Stats* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

}  // namespace segd::server
