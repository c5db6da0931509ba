#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "loadgen/histogram.h"
#include "loadgen/send_times.h"
#include "loadgen/window.h"

namespace segd::load {

// One Changes.Subscribe call to one server — every segment, from now — that counts the
// changes it receives and, with `send_times`, measures update-to-change latency: each
// change caused by an update (cause UPDATE) is matched to the latency origin of the last
// update sent for its key (see SendTimes) and timed at its arrival here. Changes are
// scanned straight from the wire (wire::ScanChangeBatch), without building messages, to
// keep the subscriber cheap next to the server it measures.
//
// A subscriber never slows ingest: one that falls too far behind is ended by the server
// with OUT_OF_RANGE (SPEC §4), which Stop reports.
//
// Thread safety: the accessors may be read from any thread at any time; Stop is called
// once, from one thread.
class ChangeSubscriber {
 public:
  // Starts the call. Nothing counts as inside the window until SetWindow.
  // REQUIRES: `send_times` (may be null) outlives the subscriber.
  ChangeSubscriber(std::shared_ptr<grpc::Channel> channel, std::string server,
                   SendTimes* send_times);
  // REQUIRES: Stop returned.
  ~ChangeSubscriber();
  ChangeSubscriber(const ChangeSubscriber&) = delete;
  ChangeSubscriber& operator=(const ChangeSubscriber&) = delete;

  // Waits up to `timeout` for the first batch (a heartbeat at the latest, within a second
  // of subscribing): from then on the subscription is in place. False on timeout or error.
  bool AwaitFirstBatch(absl::Duration timeout);

  // The measured window: window_changes() counts the changes arriving inside it, latency()
  // the changes of updates sent inside it.
  void SetWindow(const Window& window);

  // Cancels the call and waits for its end. OK if the stream was healthy until cancelled;
  // otherwise its status, naming the server (OUT_OF_RANGE: it fell behind).
  absl::Status Stop();

  uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }
  uint64_t window_changes() const { return window_changes_.load(std::memory_order_relaxed); }
  // The batches (heartbeats included) arriving inside the window.
  uint64_t window_batches() const { return window_batches_.load(std::memory_order_relaxed); }
  // Update-to-change latencies (ns) of updates sent inside the window.
  const Histogram& latency() const { return window_latency_; }
  // The same, since the caller's last TakeFrom.
  Histogram& interval_latency() { return interval_latency_; }
  // Changes that did not parse, or named a key outside the send times' range.
  uint64_t unmatched() const { return unmatched_.load(std::memory_order_relaxed); }

 private:
  class Call;

  const std::string server_;
  Window window() const {
    return {window_start_.load(std::memory_order_relaxed),
            window_end_.load(std::memory_order_relaxed)};
  }

  std::atomic<int64_t> window_start_{0};
  std::atomic<int64_t> window_end_{0};
  SendTimes* const send_times_;
  std::atomic<uint64_t> changes_{0};
  std::atomic<uint64_t> window_changes_{0};
  std::atomic<uint64_t> window_batches_{0};
  std::atomic<uint64_t> unmatched_{0};
  Histogram window_latency_;
  Histogram interval_latency_;
  std::unique_ptr<Call> call_;
};

}  // namespace segd::load
