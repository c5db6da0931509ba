#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/cluster.h"
#include "segd/v1/segd.pb.h"

namespace segd::client {

// How a Replayer sends profiles (ClusterClient::NewReplayer).
struct ReplayOptions {
  // ReplayRequest.quiet: the shards emit no changes for what is replayed.
  bool quiet = false;
  // Ingest.Replay calls per shard, run in parallel: a shard applies one message of a call
  // at a time, so several calls keep its engine threads busy.
  int streams_per_shard = 2;
  // A ReplayRequest is sent once its profiles reach this many bytes (encoded); one larger
  // profile travels alone. Capped below ClusterOptions::max_message_bytes.
  size_t message_bytes = 4 << 20;
  // Replay only the profiles the ring maps to this shard (an index in servers()); the
  // others are counted as skipped and sent nowhere.
  std::optional<int> only_shard;
};

// A rejected profile: `index` counts the profiles given to Add, from 0.
struct ReplayError {
  uint64_t index = 0;
  std::string key;
  std::string message;
};

struct ReplayResult {
  uint64_t profiles = 0;  // replaced or created, summed over the shards' ReplaySummaries
  uint64_t events = 0;
  uint64_t skipped = 0;             // not of only_shard
  std::vector<ReplayError> errors;  // sorted by index
};

// Replays full profiles (SPEC §2, Ingest.Replay) into a cluster: each profile to the
// shard the ring maps its key to, over streams_per_shard Replay calls per shard, in
// messages of about message_bytes. What a shard that died is rebuilt with (README,
// "Recovering a shard"), and how a cluster is preloaded.
//
// Profiles of one key replayed twice reach their shard in the order given only when the
// shard has one stream; with several, the later may be applied first.
//
// Failure: when a shard's call fails, the replay has failed: Add and Finish return the
// error, naming the shard; what that shard's calls carried may or may not have been
// applied, and the other shards keep what they were sent.
//
// Thread safety: Add and Finish from one thread at a time; sent() from any thread.
class Replayer {
 public:
  // Finish()es if it was not called.
  ~Replayer();
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Queues `profile` for its shard (or skips it, see only_shard). Blocks while that
  // shard's calls are behind by a few messages. After a failure, the failure.
  absl::Status Add(v1::Profile profile);

  // Sends what is queued, ends every call, and sums the shards' ReplaySummaries; the
  // first failure if a call failed. Idempotent: later calls return the first's result.
  absl::StatusOr<ReplayResult> Finish();

  // Whether Add would send a profile of `key` anywhere (false: only_shard is another).
  bool Accepts(std::string_view key) const;

  // Profiles written to the shards so far (for progress reports).
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  friend class ClusterClient;

  // A ReplayRequest being filled or waiting for a call, with the Add index of each of
  // its profiles.
  struct Message {
    v1::ReplayRequest request;
    std::vector<uint64_t> indexes;
    size_t bytes = 0;
  };

  // REQUIRES: options checked by ClusterClient::NewReplayer.
  Replayer(std::shared_ptr<const Cluster> cluster, ReplayOptions options);
  void Start();

  // Hands shard s's filling message to its calls, waiting while they are behind.
  absl::Status Ship(int s);
  // One Replay call to shard s: sends its ready messages until Finish, then ends.
  void RunCall(int s);
  // The next ready message of shard s; false once there is none and none will come.
  bool Pop(int s, Message* message);
  void Fail(absl::Status status);

  const std::shared_ptr<const Cluster> cluster_;
  const ReplayOptions options_;
  const size_t message_limit_;  // the largest message the channel takes, less framing
  const size_t message_bytes_;
  const size_t max_ready_;        // per shard
  std::vector<Message> filling_;  // by shard; the Add/Finish thread's
  uint64_t added_ = 0;            // Add calls so far (the next profile's index)
  std::atomic<uint64_t> sent_{0};
  std::vector<std::thread> calls_;

  absl::Mutex mu_;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called: no more messages
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::vector<std::deque<Message>> ready_ ABSL_GUARDED_BY(mu_);  // by shard
  ReplayResult result_ ABSL_GUARDED_BY(mu_);                     // summed as calls end
  bool finished_ = false;  // Finish has run (the Add/Finish thread's)
  absl::StatusOr<ReplayResult> final_;
};

}  // namespace segd::client
