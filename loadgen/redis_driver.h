#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "loadgen/histogram.h"
#include "loadgen/window.h"
#include "loadgen/workload.h"

namespace segd::load {

struct RedisOptions {
  std::string address;  // host:port
  uint64_t profiles = 1'000'000;
  uint64_t seed = 1;
  KeySkew skew = KeySkew::kUniform;
  uint32_t batch = 512;  // updates per pipelined batch
  int connections = 4;
  int in_flight = 8;  // batches sent and not yet answered, per connection
  int64_t now_ms = 0;
};

struct RedisPreloadResult {
  uint64_t profiles = 0;
  double seconds = 0;
  uint64_t errors = 0;  // error replies
  std::string first_error;
};

struct RedisIngestResult {
  double seconds = 0;
  uint64_t updates = 0;  // whose replies all arrived inside the window
  double updates_per_s = 0;
  uint64_t errors = 0;  // error replies
  std::string first_error;
};

struct RedisMemory {
  uint64_t used_memory = 0;  // INFO memory: used_memory (the allocator's count)
  uint64_t used_memory_rss = 0;
};

// The peer a user would reach for instead of segd: Redis on loopback storing the same
// workload — each profile a hash of its attributes plus a list of its events, each update
// the attribute change (HSET plan, or HINCRBYFLOAT ltv for a purchase's amount) and the
// event pushed onto the list, capped like segd's history (LPUSH + LTRIM to 1024) — with
// no segments evaluated. Commands are pipelined over several connections, batch by batch,
// like segd's streams.
//
// Keys: the hash u{n} and the list u{n}:events. Preload replaces both (HSET, DEL, RPUSH),
// so a run may repeat against the same Redis.
//
// Thread safety: counters and interval_latency() may be read from any thread while a run
// runs; Preload and Ingest are called from one thread, one at a time.
class RedisDriver {
 public:
  explicit RedisDriver(const RedisOptions& options);
  RedisDriver(const RedisDriver&) = delete;
  RedisDriver& operator=(const RedisDriver&) = delete;

  absl::StatusOr<RedisPreloadResult> Preload();
  // Streams updates as fast as the replies come until the window ends.
  absl::StatusOr<RedisIngestResult> Ingest(const Window& window);
  absl::StatusOr<RedisMemory> Memory() const;

  uint64_t sent_updates() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t acked_updates() const { return acked_.load(std::memory_order_relaxed); }
  uint64_t preloaded_profiles() const { return preloaded_.load(std::memory_order_relaxed); }
  // Round trips of a batch (ns) in the last Ingest's window.
  const Histogram& batch_latency() const { return window_latency_; }
  Histogram& interval_latency() { return interval_latency_; }

 private:
  // The RESP of one pooled update, around its key: the attribute command's arguments after
  // the key (its header included in attribute_head), and the event as a bulk string.
  struct UpdateTemplate {
    std::string attribute_head;  // "*4\r\n$4\r\nHSET\r\n" or HINCRBYFLOAT's; empty: none
    std::string attribute_tail;  // the field and value bulks
    std::string event_bulk;
  };

  RedisOptions options_;
  std::vector<UpdateTemplate> pool_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> acked_{0};
  std::atomic<uint64_t> preloaded_{0};
  Histogram window_latency_;
  Histogram interval_latency_;
};

}  // namespace segd::load
