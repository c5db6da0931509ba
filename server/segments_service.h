#pragma once

#include "segd/v1/segd.grpc.pb.h"
#include "server/service_env.h"

namespace segd::server {

// segd.v1.Segments (SPEC §3, §5): create or replace with the backfill diff, dry run,
// delete, get, list, validate.
class SegmentsService final : public v1::Segments::CallbackService {
 public:
  explicit SegmentsService(ServiceEnv& env) : env_(env) {}

  grpc::ServerUnaryReactor* PutSegment(grpc::CallbackServerContext* ctx,
                                       const v1::PutSegmentRequest* request,
                                       v1::PutSegmentResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSegment(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteSegmentRequest* request,
                                          v1::DeleteSegmentResponse* response) override;
  grpc::ServerUnaryReactor* GetSegment(grpc::CallbackServerContext* ctx,
                                       const v1::GetSegmentRequest* request,
                                       v1::Segment* response) override;
  grpc::ServerUnaryReactor* ListSegments(grpc::CallbackServerContext* ctx,
                                         const v1::ListSegmentsRequest* request,
                                         v1::ListSegmentsResponse* response) override;
  grpc::ServerUnaryReactor* ValidateRule(grpc::CallbackServerContext* ctx,
                                         const v1::ValidateRuleRequest* request,
                                         v1::ValidateRuleResponse* response) override;

 private:
  ServiceEnv& env_;
};

}  // namespace segd::server
