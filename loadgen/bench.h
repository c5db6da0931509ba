#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "loadgen/cluster.h"
#include "loadgen/histogram.h"
#include "loadgen/ingest_driver.h"
#include "loadgen/monitor.h"
#include "loadgen/report.h"
#include "loadgen/workload.h"

namespace segd::load {

// The phases of a run, in the order they run.
inline constexpr std::string_view kPhases[] = {"preload",  "ingest", "latency", "fanout",
                                               "backfill", "funnel", "redis"};

// CPU time spent per unit of work (a profile replayed, an update applied) over an
// interval: the servers' (Stats.cpu_seconds, summed) and segload's own, in µs. Steadier
// than rates on a shared machine: a rate falls when another process takes the cores, the
// CPU each update costs much less so.
struct CpuCost {
  double segd_us = 0;
  double segload_us = 0;
};

struct BenchOptions {
  uint64_t profiles = 1'000'000;
  uint64_t seed = 1;
  KeySkew skew = KeySkew::kUniform;
  double duration_s = 30;        // measured window of each ingest run
  double warmup_s = 5;           // before each window
  double rate = 0;               // updates/s; 0: the maximum (closed loop)
  int streams = 4;               // Ingest.Stream calls per server
  uint32_t batch = 512;          // updates per UpdateBatch
  int in_flight = 8;             // batches awaiting their Ack, per stream
  int subscribers = 4;           // of the fanout phase
  uint32_t replay_batch = 1000;  // profiles per ReplayRequest
  int replay_calls = 4;          // parallel Replay calls per server
  int build_threads = 2;         // preload's profile builders
  uint64_t preload_buffer_bytes = uint64_t{2} << 30;
  std::string redis;  // host:port of the Redis to compare with
  std::set<std::string, std::less<>> phases;
  bool progress = false;
  SeriesWriter* series = nullptr;  // may be null
};

// Runs the phases of shared/BENCHMARK.md against a cluster and puts their figures in a
// Report:
//   preload   Replay of the standard profiles; RSS before and after (Admin.GetStats
//             memory_bytes, summed over the servers); the 20 standard segments put.
//   ingest    the update stream at --rate (or the maximum): updates/s acked, ack latency.
//   latency   the stream at --rate, or half the maximum the ingest phase measured (or a
//             short probe of it), with one subscriber timing each change from the send of
//             the update that caused it.
//   fanout    the stream at the maximum with `subscribers` subscribers at once: changes/s
//             delivered, and the ingest rate against the rate without them.
//   backfill  PutSegment of one new segment over every profile (then deleted again).
//   funnel    a 3-step Query.Funnel over every history.
//   redis     Redis storing the same profiles and updates; segd's ingest as a ratio to it.
// Without preload, the servers must hold the profiles already; the 20 standard segments are
// put wherever they are missing.
//
// Thread safety: none; Run is called once.
class Bench {
 public:
  Bench(const BenchOptions& options, const Cluster& cluster, Report& report);
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  // Runs the selected phases; false if one failed (its error is in the report).
  bool Run();

 private:
  // What one ingest run measured.
  struct IngestRun {
    IngestResult ingest;
    LatencySummary ack;
    LatencySummary latency;           // update-to-change, with timed subscribers
    uint64_t changes = 0;             // received inside the window, over all subscribers
    uint64_t change_batches = 0;      // the batches that brought them (heartbeats too)
    double server_changes_per_s = 0;  // emitted by the servers inside the window
    int subscribers_dropped = 0;
    CpuCost cpu;  // per update applied inside the window
  };

  bool Selected(std::string_view phase) const;
  void Phase(std::string_view phase, const std::string& what);

  absl::Status Preload();
  absl::Status EnsureSegments();
  absl::Status Ingest();
  absl::Status Latency();
  absl::Status Fanout();
  absl::Status Backfill();
  absl::Status Funnel();
  absl::Status Redis();

  // One run of the update stream: `rate` (0: maximum) for warm-up + duration, with
  // `subscribers` subscribers per server (timing changes if `time_changes`).
  absl::StatusOr<IngestRun> RunIngest(std::string_view phase, double rate, double warmup_s,
                                      double duration_s, int subscribers, bool time_changes);
  // The maximum ingest rate: the ingest phase's, if it ran at the maximum, else a probe.
  absl::StatusOr<double> MaxRate();

  const BenchOptions options_;
  const Cluster& cluster_;
  Report& report_;
  const std::vector<uint8_t> shard_of_;
  const int64_t start_ms_;  // the wall clock at start: the profiles' "now"
  uint64_t runs_ = 0;       // ingest runs so far (each draws its own update stream)
  double max_rate_ = 0;     // measured maximum, 0 until known
};

}  // namespace segd::load
