#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "loadgen/histogram.h"

namespace segd::load {

// One second of a run, as the CSV series records it. Rates are per second over that
// second; latencies are percentiles of what completed in it (0 when nothing did).
struct SeriesRow {
  std::string phase;
  double t_s = 0;  // end of the second, since segload started
  double sent_per_s = 0;
  double acked_per_s = 0;
  double changes_per_s = 0;
  double ack_p50_ms = 0, ack_p99_ms = 0;
  double latency_p50_ms = 0, latency_p99_ms = 0;
  uint64_t in_flight = 0;
  uint64_t rejected = 0;  // in that second
};

// The per-second CSV file (--csv). Thread safety: Write may be called from any thread.
class SeriesWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SeriesWriter>> Open(const std::string& path,
                                                            int64_t start_ns);
  ~SeriesWriter();
  SeriesWriter(const SeriesWriter&) = delete;
  SeriesWriter& operator=(const SeriesWriter&) = delete;

  int64_t start_ns() const { return start_ns_; }
  void Write(const SeriesRow& row);

  static constexpr const char* kHeader =
      "phase,t_s,sent_per_s,acked_per_s,changes_per_s,ack_p50_ms,ack_p99_ms,latency_p50_ms,"
      "latency_p99_ms,in_flight_batches,rejected";

 private:
  SeriesWriter(std::FILE* file, int64_t start_ns) : file_(file), start_ns_(start_ns) {}
  std::FILE* const file_;
  const int64_t start_ns_;
};

// What a Monitor samples. Counters are cumulative (the monitor takes differences); any
// may be empty. Histograms are interval histograms that the monitor empties each second.
struct Probe {
  // How the progress line names the two counters and what they count.
  std::string sent_label = "sent";
  std::string acked_label = "acked";
  std::string unit = "updates";
  std::function<uint64_t()> sent;
  std::function<uint64_t()> acked;
  std::function<uint64_t()> changes;
  std::function<uint64_t()> in_flight;
  std::function<uint64_t()> rejected;
  std::vector<Histogram*> ack;
  std::vector<Histogram*> latency;
};

// Samples a running phase once a second, on a thread of its own: a progress line on stderr
// (rewritten in place; only when `progress`), and a row of the CSV series (when `series`
// is not null).
//
// Thread safety: the probe's functions and histograms are read from the monitor's thread;
// they must be safe for that and outlive the monitor.
class Monitor {
 public:
  Monitor(std::string phase, Probe probe, bool progress, SeriesWriter* series);
  // Stops (the last partial second is not recorded) and clears the progress line.
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

 private:
  void Loop();

  const std::string phase_;
  const Probe probe_;
  const bool progress_;
  SeriesWriter* const series_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace segd::load
