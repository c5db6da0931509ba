#pragma once

#include <chrono>
#include <cstdint>

namespace segd::load {

// segload's own clock: steady (monotonic) nanoseconds. Every latency is the difference of
// two readings of it taken inside segload — a send and the arrival of its reply or change —
// so it never mixes clocks with the server's.
inline int64_t MonoNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Wall-clock milliseconds since the Unix epoch (the server's system clock on this machine).
inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The measured part of a run, [start_ns, end_ns) on MonoNs: a run starts, warms up until
// start_ns, and what happens from then until end_ns is what its figures report.
struct Window {
  int64_t start_ns = 0;
  int64_t end_ns = 0;

  // A window that starts `warmup_s` from now and lasts `duration_s`.
  static Window After(double warmup_s, double duration_s) {
    const int64_t now = MonoNs();
    const auto start = now + static_cast<int64_t>(warmup_s * 1e9);
    return {start, start + static_cast<int64_t>(duration_s * 1e9)};
  }

  bool Contains(int64_t t_ns) const { return t_ns >= start_ns && t_ns < end_ns; }
  double seconds() const { return static_cast<double>(end_ns - start_ns) / 1e9; }
};

}  // namespace segd::load
