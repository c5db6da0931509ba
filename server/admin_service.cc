#include "server/admin_service.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>

#include "core/cpu_time.h"
#include "server/convert.h"

// Both handlers are unary calls on the default reactor: they start one asynchronous
// engine operation and return; its `done` (on a shard thread) finishes the call.
namespace segd::server {
namespace {

// The process's resident set size in bytes: the second field of /proc/self/statm (in
// pages) times the page size. nullopt where /proc is not there (not Linux).
std::optional<uint64_t> ResidentSetBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return std::nullopt;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int fields = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  const long page = sysconf(_SC_PAGESIZE);
  if (fields != 2 || page <= 0) return std::nullopt;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(page);
}

}  // namespace

grpc::ServerUnaryReactor* AdminService::SetTime(grpc::CallbackServerContext* ctx,
                                                const v1::SetTimeRequest* request,
                                                v1::SetTimeResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  if (!env_.manual_clock) {
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 "SetTime needs the manual clock (--clock=manual); this server "
                                 "runs on the system clock"));
    return reactor;
  }
  // `done` runs once every shard has fired the timers due by `now`: the TIME changes
  // are in the change log before the call returns (SPEC §3).
  const int64_t now = request->now();
  env_.engine.SetTimeAsync(now, [reactor, response, now](absl::Status status) {
    if (!status.ok()) {
      reactor->Finish(ToGrpcStatus(status));
      return;
    }
    response->set_now(now);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* ctx,
                                                 const v1::GetStatsRequest* /*request*/,
                                                 v1::Stats* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  // Stats.memory_bytes is the whole process's resident set size as the kernel reports it
  // (/proc/self/statm), not the engine's estimate of its own data, which is used only
  // where /proc is not available.
  const std::optional<uint64_t> rss = ResidentSetBytes();
  env_.engine.StatsAsync([reactor, response, rss](EngineStats stats) {
    if (rss.has_value()) stats.memory_bytes = *rss;
    ToProto(stats, response);
    response->set_cpu_seconds(ProcessCpuSeconds());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace segd::server
