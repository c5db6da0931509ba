#include "core/timer_queue.h"

#include <catch2/catch.hpp>
#include <random>
#include <utility>
#include <vector>

namespace segd {
namespace {

TEST_CASE("TimerQueue pops what is due, earliest first, ties by slot", "[core][time]") {
  TimerQueue q;
  int64_t due = 0;
  uint32_t slot = 0;
  CHECK_FALSE(q.PopDue(1'000, &due, &slot));
  q.Push(30, 7);
  q.Push(10, 9);
  q.Push(30, 2);
  q.Push(20, 5);
  CHECK_FALSE(q.PopDue(9, &due, &slot));
  REQUIRE(q.PopDue(10, &due, &slot));
  CHECK(std::pair(due, slot) == std::pair<int64_t, uint32_t>(10, 9));
  CHECK_FALSE(q.PopDue(19, &due, &slot));
  REQUIRE(q.PopDue(100, &due, &slot));
  CHECK(std::pair(due, slot) == std::pair<int64_t, uint32_t>(20, 5));
  REQUIRE(q.PopDue(100, &due, &slot));
  CHECK(std::pair(due, slot) == std::pair<int64_t, uint32_t>(30, 2));
  REQUIRE(q.PopDue(100, &due, &slot));
  CHECK(std::pair(due, slot) == std::pair<int64_t, uint32_t>(30, 7));
  CHECK(q.size() == 0);
}

TEST_CASE("TimerQueue agrees with a sorted list over random pushes and pops", "[core][time]") {
  std::mt19937_64 rng(20261122);
  TimerQueue q;
  std::vector<std::pair<int64_t, uint32_t>> model;
  int64_t now = 1'700'000'000'000;
  for (int round = 0; round < 200; ++round) {
    const int pushes = static_cast<int>(rng() % 500);
    for (int i = 0; i < pushes; ++i) {
      // Due times far past 2^32 ms from zero, and some already due.
      const int64_t due = now - 1'000 + static_cast<int64_t>(rng() % 200'000'000);
      const auto slot = static_cast<uint32_t>(rng());
      q.Push(due, slot);
      model.emplace_back(due, slot);
    }
    now += static_cast<int64_t>(rng() % 2'000'000);
    std::sort(model.begin(), model.end());
    size_t popped = 0;
    int64_t due = 0;
    uint32_t slot = 0;
    while (q.PopDue(now, &due, &slot)) {
      REQUIRE(popped < model.size());
      if (std::pair(due, slot) != model[popped])
        FAIL("round " << round << ": popped " << due << "/" << slot << ", expected "
                      << model[popped].first << "/" << model[popped].second);
      ++popped;
    }
    CHECK((popped == model.size() || model[popped].first > now));
    model.erase(model.begin(), model.begin() + static_cast<ptrdiff_t>(popped));
    CHECK(q.size() == model.size());
  }
}

TEST_CASE("TimerQueue entries are 12 bytes", "[core][time]") {
  TimerQueue q;
  for (uint32_t i = 0; i < 100'000; ++i) q.Push(i, i);
  CHECK(q.MemoryBytes() >= 100'000 * 12);
  CHECK(q.MemoryBytes() < 2 * 100'000 * 12);
}

}  // namespace
}  // namespace segd
