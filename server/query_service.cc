#include "server/query_service.h"

namespace segd::server {

grpc::ServerUnaryReactor* QueryService::GetProfile(grpc::CallbackServerContext* ctx,
                                       const v1::GetProfileRequest* request,
                                       v1::Profile* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerWriteReactor<v1::MemberBatch>* QueryService::ListMembers(grpc::CallbackServerContext* ctx,
                                                         const v1::ListMembersRequest* request) {
  return nullptr;  // placeholder
}

grpc::ServerUnaryReactor* QueryService::Count(grpc::CallbackServerContext* ctx, const v1::CountRequest* request,
                                  v1::CountResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* QueryService::Funnel(grpc::CallbackServerContext* ctx, const v1::FunnelRequest* request,
                                   v1::FunnelResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* QueryService::Explain(grpc::CallbackServerContext* ctx,
                                    const v1::ExplainRequest* request,
                                    v1::ExplainResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerWriteReactor<v1::ExportBatch>* QueryService::Export(grpc::CallbackServerContext* ctx,
                                                    const v1::ExportRequest* request) {
  return nullptr;  // placeholder
}

}  // namespace segd::server
