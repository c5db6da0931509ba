#pragma once

#include "segd/v1/segd.grpc.pb.h"
#include "server/service_env.h"

namespace segd::server {

// segd.v1.Query (SPEC §5): profile, members, count, funnel, explain, export.
class QueryService final : public v1::Query::CallbackService {
 public:
  explicit QueryService(ServiceEnv& env) : env_(env) {}

  grpc::ServerUnaryReactor* GetProfile(grpc::CallbackServerContext* ctx,
                                       const v1::GetProfileRequest* request,
                                       v1::Profile* response) override;
  grpc::ServerWriteReactor<v1::MemberBatch>* ListMembers(
      grpc::CallbackServerContext* ctx, const v1::ListMembersRequest* request) override;
  grpc::ServerUnaryReactor* Count(grpc::CallbackServerContext* ctx, const v1::CountRequest* request,
                                  v1::CountResponse* response) override;
  grpc::ServerUnaryReactor* Funnel(grpc::CallbackServerContext* ctx,
                                   const v1::FunnelRequest* request,
                                   v1::FunnelResponse* response) override;
  grpc::ServerUnaryReactor* Explain(grpc::CallbackServerContext* ctx,
                                    const v1::ExplainRequest* request,
                                    v1::ExplainResponse* response) override;
  grpc::ServerWriteReactor<v1::ExportBatch>* Export(grpc::CallbackServerContext* ctx,
                                                    const v1::ExportRequest* request) override;

 private:
  ServiceEnv& env_;
};

}  // namespace segd::server
