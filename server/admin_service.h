#pragma once

#include "segd/v1/segd.grpc.pb.h"
#include "server/service_env.h"

namespace segd::server {

// segd.v1.Admin (SPEC §5): SetTime (FAILED_PRECONDITION unless --clock=manual, or
// backwards), GetStats.
class AdminService final : public v1::Admin::CallbackService {
 public:
  explicit AdminService(ServiceEnv& env) : env_(env) {}

  grpc::ServerUnaryReactor* SetTime(grpc::CallbackServerContext* ctx,
                                    const v1::SetTimeRequest* request,
                                    v1::SetTimeResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx,
                                     const v1::GetStatsRequest* request,
                                     v1::Stats* response) override;

 private:
  ServiceEnv& env_;
};

}  // namespace segd::server
