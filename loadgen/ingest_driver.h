#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "loadgen/cluster.h"
#include "loadgen/histogram.h"
#include "loadgen/send_times.h"
#include "loadgen/update_stream.h"
#include "loadgen/window.h"

namespace segd::load {

struct IngestOptions {
  int streams_per_server = 4;  // Ingest.Stream calls per server, each on its own connection
  int in_flight = 8;           // batches sent and not yet acked, per stream
  // Updates per second over the whole cluster, open loop: update j is due at start + j /
  // rate, a batch when its last update is, and its latencies count from that due time (so a
  // server that falls behind is charged for the wait, not hidden by it). 0: closed loop, as
  // fast as the acks allow, latencies from the actual send.
  double rate = 0;
  Window window;  // the run starts at construction and sends until window.end_ns
  // With rate > 0: batches a stream may hold back (due but waiting for an ack to free a
  // slot) before the generator waits, and the schedule slips.
  int max_queued = 256;
};

// Figures counted since the driver started; readable at any time from any thread.
struct IngestCounters {
  uint64_t sent_updates = 0;
  uint64_t acked_updates = 0;  // applied, as the acks report them
  uint64_t rejected_updates = 0;
  uint64_t in_flight_batches = 0;
};

// What a run measured inside its window.
struct IngestResult {
  double seconds = 0;
  uint64_t sent_updates = 0;   // sent in the window
  uint64_t acked_updates = 0;  // acked (applied) in the window
  uint64_t rejected_updates = 0;
  double updates_per_s = 0;  // acked_updates / seconds
  double sent_per_s = 0;
  uint64_t unsent_batches = 0;  // rate > 0: due but never sent when the run ended
  std::string first_rejection;  // the first UpdateError's message, if any
};

// Streams the standard update mix into every server of a cluster over several
// Ingest.Stream calls per server, pipelined (up to `in_flight` batches per stream), open
// loop at a target rate or closed loop at the maximum, and measures ack latency — from a
// batch's send (or due time) to its Ack.
//
// One generator thread draws the batches (UpdateStream) and hands each to a stream of its
// server, round robin; each stream is a gRPC callback reactor over raw bytes (the batches
// are already serialized) that keeps one write in flight and reads Acks as they come.
// With `send_times`, each update's key is stamped with its latency origin as it is sent,
// for ChangeSubscriber.
//
// Thread safety: counters(), interval_ack_latency() and ack_latency() may be read from any
// thread while Run runs; Run is called once.
class IngestDriver {
 public:
  // REQUIRES: `cluster` and `send_times` (may be null) outlive the driver;
  // updates->options().profiles <= send_times->keys().
  IngestDriver(const Cluster& cluster, std::unique_ptr<UpdateStream> updates,
               const IngestOptions& options, SendTimes* send_times);
  ~IngestDriver();
  IngestDriver(const IngestDriver&) = delete;
  IngestDriver& operator=(const IngestDriver&) = delete;

  // Opens the streams, sends until the window ends, then waits (up to 60 s) for the acks of
  // what was sent and closes the streams. Errors: a stream the server ended with an error
  // (the first such status, naming its server).
  absl::Status Run();

  IngestCounters counters() const;
  // Ack latencies (ns) inside the window.
  const Histogram& ack_latency() const { return window_ack_; }
  // Ack latencies (ns) since the last TakeFrom by the caller (the progress monitor).
  Histogram& interval_ack_latency() { return interval_ack_; }
  // REQUIRES: Run returned.
  IngestResult result() const;

 private:
  class StreamCall;
  struct Outgoing;

  // The generator loop. Returns when the window is over or every stream is broken.
  void Generate();
  // A stream of `server` with room for one more batch, waiting for one; null when none of
  // its streams can take batches any more.
  StreamCall* StreamWithRoom(int server, size_t max_queued);
  void OnAcked(int64_t origin_ns, int64_t now_ns, uint32_t applied, uint32_t rejected,
               const std::string& first_rejection);
  // Wakes the generator when a stream frees room.
  void NotifyRoom();

  const Cluster& cluster_;
  std::unique_ptr<UpdateStream> updates_;
  const IngestOptions options_;
  SendTimes* const send_times_;
  std::vector<std::vector<std::unique_ptr<StreamCall>>> streams_;  // [server][stream]
  std::vector<size_t> next_stream_;                                // round robin, per server

  std::atomic<uint64_t> sent_updates_{0};
  std::atomic<uint64_t> acked_updates_{0};
  std::atomic<uint64_t> rejected_updates_{0};
  std::atomic<uint64_t> in_flight_batches_{0};
  std::atomic<uint64_t> window_sent_{0};
  std::atomic<uint64_t> window_acked_{0};
  std::atomic<uint64_t> window_rejected_{0};
  uint64_t unsent_batches_ = 0;  // written by Run only
  Histogram window_ack_;
  Histogram interval_ack_;

  absl::Mutex room_mu_;
  absl::CondVar room_cv_;
  uint64_t room_events_ ABSL_GUARDED_BY(room_mu_) = 0;

  mutable absl::Mutex rejection_mu_;
  std::string first_rejection_ ABSL_GUARDED_BY(rejection_mu_);
};

}  // namespace segd::load
