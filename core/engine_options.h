#pragma once

#include <cstdint>

namespace segd {

inline constexpr int64_t kMsPerSecond = 1000;
inline constexpr int64_t kMsPerDay = 86'400'000;

// The limits of SPEC §1 and §4, one set per engine (the server's flags).
struct EngineOptions {
  int64_t retention_ms = 90 * kMsPerDay;   // events at or before now - retention drop out
  uint32_t max_events = 1024;              // per profile; past it the oldest drop
  int64_t max_future_ms = 1 * kMsPerDay;   // events further ahead than this are rejected
  uint64_t change_log_capacity = 1 << 20;  // changes kept per shard for cursor resume
  uint32_t max_segments = 1024;
  // A tuning, not a limit: a profile holding at least this many events (a hot key's)
  // has its decoded history kept by its store once it is seen updated twice (see
  // ProfileStore::Impl::History). Tests lower it to run every profile through that cache.
  uint32_t cached_history_min_events = 256;
};

}  // namespace segd
