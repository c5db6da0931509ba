#pragma once

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <cassert>
#include <cstdint>

#include "absl/status/status.h"
#include "core/engine.h"
#include "server/convert.h"

namespace segd::server {

// What every gRPC service of one segd process shares.
//
// Thread safety: all members may be used from any thread.
struct ServiceEnv {
  Engine& engine;
  // Whether Admin.SetTime is allowed (--clock=manual).
  bool manual_clock = false;
  // Set when the server starts draining: new calls get UNAVAILABLE.
  std::atomic<bool> draining{false};
  // Largest message a client may send or receive (--max-message-bytes).
  int max_message_bytes = 64 << 20;

  ServiceEnv(Engine& e, bool manual, int max_bytes)
      : engine(e), manual_clock(manual), max_message_bytes(max_bytes) {}
};

// A message as the bytes a raw method writes.
template <typename M>
grpc::ByteBuffer Serialize(const M& message) {
  grpc::ByteBuffer buffer;
  bool own_buffer;
  const grpc::Status serialized =
      grpc::SerializationTraits<M>::Serialize(message, &buffer, &own_buffer);
  assert(serialized.ok());  // fails only for messages over 2 GB
  (void)serialized;
  return buffer;
}

// What every call gets while the server drains (SPEC §5: UNAVAILABLE while shutting down).
inline grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down");
}

// For unary handlers: finishes `reactor` at once, and says so, when the server drains
// (UNAVAILABLE) or `check` of the request failed (its code and message).
inline bool Refused(grpc::ServerUnaryReactor* reactor, const ServiceEnv& env,
                    const absl::Status& check = absl::OkStatus()) {
  if (env.draining) {
    reactor->Finish(ShuttingDown());
    return true;
  }
  if (!check.ok()) {
    reactor->Finish(ToGrpcStatus(check));
    return true;
  }
  return false;
}

}  // namespace segd::server
