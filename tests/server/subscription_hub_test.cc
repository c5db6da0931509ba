// The pump's wakeup: when a pass is due at once, and when it is left to the pump's pacing.
// The test thread plays the pump (Wait) and the shards (Notify, NotifyPaced) in turn.
#include "server/subscription_hub.h"

#include <catch2/catch.hpp>
#include <chrono>

namespace segd::server {
namespace {

using Wakeup = SubscriptionHub::Wakeup;
using Clock = std::chrono::steady_clock;

// A timeout no passing test waits out.
constexpr absl::Duration kForever = absl::Hours(1);

TEST_CASE("A pump that is not pacing is woken by every kind of notice", "[server][hub]") {
  Wakeup w;
  bool changed = true;
  SECTION("nothing: the wait times out and reports no change") {
    REQUIRE(w.Wait(absl::Milliseconds(1), /*pacing=*/false, &changed));
    CHECK_FALSE(changed);
  }
  SECTION("Notify") {
    w.Notify();
    REQUIRE(w.Wait(kForever, /*pacing=*/false, &changed));
    CHECK(changed);
  }
  SECTION("NotifyPaced") {
    w.NotifyPaced();
    REQUIRE(w.Wait(kForever, /*pacing=*/false, &changed));
    CHECK(changed);
  }
  SECTION("a notice is taken by one wait only") {
    w.Notify();
    w.Notify();
    REQUIRE(w.Wait(kForever, /*pacing=*/false, &changed));
    REQUIRE(w.Wait(absl::Milliseconds(1), /*pacing=*/false, &changed));
    CHECK_FALSE(changed);
  }
}

TEST_CASE("A pacing pump leaves paced notices to its next pass", "[server][hub]") {
  Wakeup w;
  bool changed = true;
  REQUIRE(w.Wait(absl::Milliseconds(1), /*pacing=*/true, &changed));  // the pump paces now
  CHECK_FALSE(changed);
  w.NotifyPaced();  // a busy shard's changes: no wakeup
  SECTION("the paced pass reports them") {
    const auto start = Clock::now();
    REQUIRE(w.Wait(absl::Milliseconds(30), /*pacing=*/true, &changed));
    CHECK(changed);
    CHECK(Clock::now() - start >= std::chrono::milliseconds(25));  // it slept its interval
  }
  SECTION("Notify still wakes it at once") {
    w.Notify();
    REQUIRE(w.Wait(kForever, /*pacing=*/true, &changed));
    CHECK(changed);
  }
  SECTION("a pump that stops pacing does not sleep over them") {
    REQUIRE(w.Wait(kForever, /*pacing=*/false, &changed));
    CHECK(changed);
  }
}

TEST_CASE("Stop ends every wait", "[server][hub]") {
  Wakeup w;
  bool changed = false;
  w.Stop();
  CHECK_FALSE(w.Wait(kForever, /*pacing=*/true, &changed));
  CHECK_FALSE(w.Wait(kForever, /*pacing=*/false, &changed));
}

}  // namespace
}  // namespace segd::server
