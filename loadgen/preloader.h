#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "loadgen/cluster.h"

namespace segd::load {

struct PreloadOptions {
  uint64_t profiles = 1'000'000;  // keys u0 … u{profiles-1}
  uint64_t seed = 1;
  int64_t now_ms = 0;  // histories end here (the servers' clock)
  uint32_t profiles_per_message = 1000;
  int calls_per_server = 4;  // parallel Replay calls per server
  int build_threads = 2;
  // Encoded profiles built before the clock starts, and held ahead of the senders after.
  uint64_t buffer_bytes = uint64_t{2} << 30;
};

struct PreloadResult {
  uint64_t profiles = 0;  // replaced or created, as the ReplaySummaries count them
  uint64_t events = 0;
  uint64_t errors = 0;
  std::string first_error;
  double seconds = 0;      // from the first message sent to the last summary
  double build_cpu_s = 0;  // CPU the builder threads spent making and encoding profiles
  double built_ahead = 0;  // the share of profiles built before the clock started
};

// Preloads the standard profiles (Workload::MakeProfile) into a cluster through
// Ingest.Replay (quiet: no changes emitted), each profile to its shard.
//
// The server applies one message at a time per call, so every server gets several Replay
// calls in parallel, each sending large messages (profiles_per_message profiles). Builder
// threads make the profiles and encode them straight to wire bytes (wire::AppendProfile);
// as much as fits in buffer_bytes is built before the clock starts, so that the figure is
// the servers' replay rate rather than the builders' (past the buffer, building overlaps
// the replay and shares the CPU with it).
//
// Thread safety: sent_profiles() may be read from any thread while Run runs.
class Preloader {
 public:
  // REQUIRES: `cluster` outlives the preloader; shard_of is empty or has options.profiles
  // entries.
  Preloader(const Cluster& cluster, const std::vector<uint8_t>& shard_of,
            const PreloadOptions& options);
  Preloader(const Preloader&) = delete;
  Preloader& operator=(const Preloader&) = delete;

  // Errors: a Replay call that failed (naming its server). Rejected profiles are not
  // errors of the run; they are counted in the result.
  absl::StatusOr<PreloadResult> Run();

  uint64_t sent_profiles() const { return sent_profiles_.load(std::memory_order_relaxed); }
  uint64_t built_profiles() const { return built_profiles_.load(std::memory_order_relaxed); }

 private:
  struct Message {
    std::string bytes;  // a serialized ReplayRequest
    uint32_t profiles = 0;
  };

  void Build();
  // Queues `message` for `server`, waiting while the buffer is full; false once aborted.
  bool Push(int server, Message message);
  // The next message for `server`; false when none is left (or the run was aborted).
  bool Pop(int server, Message* message);
  // One Replay call: sends messages for `server` until none is left.
  absl::Status Send(int server, PreloadResult* result);
  void Abort();

  const Cluster& cluster_;
  const std::vector<uint8_t>& shard_of_;
  const PreloadOptions options_;
  std::atomic<uint64_t> next_key_{0};
  std::atomic<uint64_t> built_profiles_{0};
  std::atomic<uint64_t> sent_profiles_{0};

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<std::deque<Message>> queues_ ABSL_GUARDED_BY(mu_);  // per server
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int builders_running_ ABSL_GUARDED_BY(mu_) = 0;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  double build_cpu_s_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segd::load
