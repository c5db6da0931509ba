#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace segd {

// The engine's source of "now", in ms since the Unix epoch. Injected, so that tests
// step time exactly (SPEC §1 "Clock").
//
// Thread safety: NowMs() may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Moves only when told to. The engine, not the clock, refuses backward moves
// (Engine::SetTime), so tests can still build any scenario.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_(start_ms) {}
  int64_t NowMs() const override { return now_.load(std::memory_order_acquire); }
  void Set(int64_t ms) { now_.store(ms, std::memory_order_release); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace segd
