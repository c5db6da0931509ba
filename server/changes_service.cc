#include "server/changes_service.h"

namespace segd::server {

ChangesService::ChangesService(ServiceEnv& env) : env_(env) {}
ChangesService::~ChangesService() = default;
void ChangesService::FinishAll() {}

grpc::ServerWriteReactor<v1::ChangeBatch>* ChangesService::Subscribe(grpc::CallbackServerContext* ctx,
                                                       const v1::SubscribeRequest* request) {
  return nullptr;  // placeholder
}

}  // namespace segd::server
