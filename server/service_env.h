#pragma once

#include <atomic>
#include <cstdint>

#include <grpcpp/support/status.h>

#include "core/engine.h"

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

// What every call gets while the server drains (SPEC §5: UNAVAILABLE while shutting down).
inline grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down");
}

}  // namespace segd::server
