#include "server/segments_service.h"

namespace segd::server {

grpc::ServerUnaryReactor* SegmentsService::PutSegment(grpc::CallbackServerContext* ctx,
                                       const v1::PutSegmentRequest* request,
                                       v1::PutSegmentResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* SegmentsService::DeleteSegment(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteSegmentRequest* request,
                                          v1::DeleteSegmentResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* SegmentsService::GetSegment(grpc::CallbackServerContext* ctx,
                                       const v1::GetSegmentRequest* request,
                                       v1::Segment* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* SegmentsService::ListSegments(grpc::CallbackServerContext* ctx,
                                         const v1::ListSegmentsRequest* request,
                                         v1::ListSegmentsResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

grpc::ServerUnaryReactor* SegmentsService::ValidateRule(grpc::CallbackServerContext* ctx,
                                         const v1::ValidateRuleRequest* request,
                                         v1::ValidateRuleResponse* response) {
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet"));
  return r;
}

}  // namespace segd::server
