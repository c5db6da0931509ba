// segd: one shard of a segd cluster. Parses flags and runs a Server until SIGTERM or
// SIGINT, then drains.
#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/rule.h"
#include "server/command_line.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070",
          "host:port to serve gRPC on (port 0: any free port)");
ABSL_FLAG(int, shards, 0, "engine shards, one thread each (0: one per core)");
ABSL_FLAG(
    std::string, clock, "system",
    "'system' (wall clock) or 'manual' (starts at --start-time, moves only by Admin.SetTime)");
ABSL_FLAG(int64_t, start_time, -1,
          "with --clock=manual: the start time in ms since the epoch (-1: now)");
ABSL_FLAG(std::string, retention, "90d",
          "events at or before now - retention stop counting and are dropped (e.g. 90d, 12h)");
ABSL_FLAG(int, max_events, 1024, "events kept per profile; past it the oldest are dropped");
ABSL_FLAG(std::string, max_future, "1d", "events further ahead of now than this are rejected");
ABSL_FLAG(int64_t, change_log_capacity, 1 << 20,
          "membership changes kept per shard for cursor resume; older cursors get OUT_OF_RANGE");
ABSL_FLAG(int, max_segments, 1024, "segments that may be defined at once");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "largest gRPC message accepted or sent");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");
ABSL_FLAG(int, drain_seconds, 10, "on SIGTERM/SIGINT: how long open calls may take to finish");

namespace {

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "segd: " << message << "\n";
  std::exit(2);
}

int64_t DurationFlag(const std::string& name, const std::string& value) {
  absl::StatusOr<int64_t> ms = segd::ParseDuration(value);
  if (!ms.ok()) Die(absl::StrCat("--", name, ": ", ms.status().message()));
  if (*ms <= 0) Die(absl::StrCat("--", name, ": must be positive"));
  return *ms;
}

}  // namespace

int main(int argc, char** argv) {
  segd::server::ParseCommandLine(
      argc, argv, "server/main.cc",
      "an in-memory streaming segmentation server (one shard of a cluster).\n"
      "Usage: segd [--listen=127.0.0.1:7070] [--clock=system|manual] [flags]\n"
      "Flag names take dashes or underscores alike (--start-time, --start_time).");
  // Debian builds Abseil without NDEBUG, so absl::Mutex would run its debugging deadlock
  // detector (a process-wide graph of locks, kept under one spin lock) on every Lock and
  // destruction: 0.2–0.4 % of segd's samples under load. The tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  segd::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.shards = absl::GetFlag(FLAGS_shards);
  const std::string clock = absl::GetFlag(FLAGS_clock);
  if (clock != "system" && clock != "manual") Die("--clock: must be 'system' or 'manual'");
  options.manual_clock = clock == "manual";
  options.start_time_ms = absl::GetFlag(FLAGS_start_time);
  options.engine.retention_ms = DurationFlag("retention", absl::GetFlag(FLAGS_retention));
  options.engine.max_future_ms = DurationFlag("max-future", absl::GetFlag(FLAGS_max_future));
  if (absl::GetFlag(FLAGS_max_events) < 1) Die("--max-events: must be at least 1");
  options.engine.max_events = static_cast<uint32_t>(absl::GetFlag(FLAGS_max_events));
  if (absl::GetFlag(FLAGS_change_log_capacity) < 1)
    Die("--change-log-capacity: must be at least 1");
  options.engine.change_log_capacity =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_change_log_capacity));
  if (absl::GetFlag(FLAGS_max_segments) < 1) Die("--max-segments: must be at least 1");
  options.engine.max_segments = static_cast<uint32_t>(absl::GetFlag(FLAGS_max_segments));
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  if (options.shards < 0) Die("--shards: must be 0 (one per core) or more");

  const spdlog::level::level_enum level = spdlog::level::from_str(absl::GetFlag(FLAGS_log_level));
  spdlog::set_level(level);

  // Block SIGTERM and SIGINT before any thread starts (threads inherit the mask), and
  // take them synchronously below with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<segd::server::Server>> server =
      segd::server::Server::Start(options);
  if (!server.ok()) Die(std::string(server.status().message()));
  spdlog::info(
      "segd started: version={} listen={} port={} shards={} clock={} retention_ms={} "
      "max_events={} max_future_ms={} change_log_capacity={} max_segments={} "
      "max_message_bytes={}",
      SEGD_VERSION, options.listen, (*server)->port(), (*server)->shards(), clock,
      options.engine.retention_ms, options.engine.max_events, options.engine.max_future_ms,
      options.engine.change_log_capacity, options.engine.max_segments, options.max_message_bytes);

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("segd draining after {}: {}s for open calls", strsignal(signal),
               absl::GetFlag(FLAGS_drain_seconds));
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));
  spdlog::info("segd stopped");
  return 0;
}
