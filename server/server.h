#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/engine.h"
#include "core/shard_executor.h"
#include "server/service_env.h"

namespace grpc {
class Server;
}

namespace segd::server {

class AdminService;
class ChangesService;
class IngestService;
class QueryService;
class SegmentsService;

// Everything a segd process is started with (its flags).
struct ServerOptions {
  std::string listen = "127.0.0.1:7070";  // host:port; port 0 picks a free one
  int shards = 0;                         // 0: one per core
  bool manual_clock = false;              // --clock=manual
  int64_t start_time_ms = -1;             // manual clock start; -1: the wall clock now
  EngineOptions engine;
  int max_message_bytes = 64 << 20;
};

// One segd shard server: an engine with a thread per shard, the gRPC services of
// SPEC §5, gRPC health checking and reflection, and (under the system clock) a ticker
// that applies time-driven changes within a second of their due time.
//
// Thread safety: all methods may be called from any thread.
class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  // Shuts down (with a short deadline) if Shutdown was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  int shards() const { return engine_->num_shards(); }
  Engine& engine() { return *engine_; }

  // Drains: health turns NOT_SERVING, new calls get UNAVAILABLE, open streams are
  // finished, and calls still running at the deadline are cancelled. Idempotent.
  void Shutdown(absl::Duration deadline);
  // Blocks until Shutdown has finished.
  void Wait();

 private:
  Server() = default;
  void RunTicker();

  std::unique_ptr<Clock> clock_;
  std::unique_ptr<ThreadedExecutor> executor_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ServiceEnv> env_;
  std::unique_ptr<IngestService> ingest_;
  std::unique_ptr<SegmentsService> segments_;
  std::unique_ptr<ChangesService> changes_;
  std::unique_ptr<QueryService> query_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> grpc_;
  int port_ = 0;
  std::thread ticker_;
  absl::Notification stopping_;
  absl::Notification stopped_;
  std::atomic<bool> shutdown_started_{false};
  std::atomic<int> active_calls_{0};  // calls in progress (see CallCounter in server.cc)
};

}  // namespace segd::server
