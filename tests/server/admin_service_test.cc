#include "server/admin_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/change.h"
#include "core/engine.h"
#include "tests/server/server_fixture.h"

namespace segd::server {
namespace {

using testing::kDay;
using testing::kHour;
using testing::kT0;
using testing::ServerFixture;
using testing::TestOptions;

grpc::Status SetTime(ServerFixture& f, int64_t now, v1::SetTimeResponse* response) {
  grpc::ClientContext ctx;
  v1::SetTimeRequest request;
  request.set_now(now);
  return f.admin->SetTime(&ctx, request, response);
}

grpc::Status GetStats(ServerFixture& f, v1::Stats* stats) {
  grpc::ClientContext ctx;
  return f.admin->GetStats(&ctx, v1::GetStatsRequest(), stats);
}

ProfileUpdate EventUpdate(std::string key, std::string type, int64_t time) {
  ProfileUpdate u;
  u.key = std::move(key);
  u.events.push_back(Event{std::move(type), time, "", {}});
  return u;
}

std::vector<Change> ChangesSince(Engine& engine, Cursor cursor) {
  std::vector<Change> out;
  REQUIRE(engine.ReadChanges(&cursor, 100000, nullptr, &out).ok());
  return out;
}

TEST_CASE("SetTime moves the clock and emits the TIME changes due, at their exact times",
          "[server][admin]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  REQUIRE(engine.PutSegment({"recent", "did(view within 1d)", ""}, false).ok());
  REQUIRE(engine.PutSegment({"recent_buy", "did(buy within 12h)", ""}, false).ok());
  const std::vector<ProfileUpdate> updates = {EventUpdate("u1", "view", kT0 + 1000),
                                              EventUpdate("u2", "view", kT0 - kHour),
                                              EventUpdate("u2", "buy", kT0)};
  REQUIRE(engine.Apply(updates).errors.empty());
  const Cursor before = engine.CurrentCursor();

  v1::SetTimeResponse response;
  REQUIRE(SetTime(f, kT0 + 2 * kDay, &response).ok());
  CHECK(response.now() == kT0 + 2 * kDay);
  CHECK(engine.now() == kT0 + 2 * kDay);

  // Every flip is in the change log when SetTime returns.
  std::vector<Change> changes = ChangesSince(engine, before);
  std::sort(changes.begin(), changes.end(),
            [](const Change& a, const Change& b) { return a.time < b.time; });
  const std::vector<Change> want = {
      {"u2", "recent_buy", ChangeKind::kExit, kT0 + 12 * kHour, Cause::kTime},
      {"u2", "recent", ChangeKind::kExit, kT0 - kHour + kDay, Cause::kTime},
      {"u1", "recent", ChangeKind::kExit, kT0 + 1000 + kDay, Cause::kTime},
  };
  CHECK(changes == want);

  SECTION("SetTime to the current time changes nothing") {
    const Cursor now = engine.CurrentCursor();
    REQUIRE(SetTime(f, kT0 + 2 * kDay, &response).ok());
    CHECK(response.now() == kT0 + 2 * kDay);
    CHECK(ChangesSince(engine, now).empty());
  }
  SECTION("SetTime backwards is FAILED_PRECONDITION and changes nothing") {
    grpc::Status s = SetTime(f, kT0 + 2 * kDay - 1, &response);
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(s.error_message().find("back") != std::string::npos);
    v1::Stats stats;
    REQUIRE(GetStats(f, &stats).ok());
    CHECK(stats.now() == kT0 + 2 * kDay);
  }
}

TEST_CASE("SetTime on the system clock is FAILED_PRECONDITION", "[server][admin]") {
  ServerOptions options = TestOptions();
  options.manual_clock = false;
  ServerFixture f(options);
  v1::SetTimeResponse response;
  grpc::Status s = SetTime(f, kT0 + kDay * 10000, &response);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(s.error_message().find("--clock=manual") != std::string::npos);
  v1::Stats stats;
  REQUIRE(GetStats(f, &stats).ok());
  CHECK(stats.now() < kT0 + kDay * 10000);
}

TEST_CASE("GetStats reports the engine's counters and the process's memory and CPU time",
          "[server][admin]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  REQUIRE(engine.PutSegment({"viewers", "did(view)", ""}, false).ok());
  REQUIRE(engine.PutSegment({"buyers", "did(buy)", ""}, false).ok());
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < 30; ++i) {
    updates.push_back(EventUpdate("k" + std::to_string(i), "view", kT0 - i));
    if (i % 3 == 0) updates.push_back(EventUpdate("k" + std::to_string(i), "buy", kT0 - i));
  }
  REQUIRE(engine.Apply(updates).errors.empty());

  v1::Stats stats;
  REQUIRE(GetStats(f, &stats).ok());
  CHECK(stats.profiles() == 30);
  CHECK(stats.events() == 40);
  CHECK(stats.segments() == 2);
  CHECK(stats.updates_applied() == 40);
  CHECK(stats.changes_emitted() == 40);  // 30 viewers and 10 buyers entered
  CHECK(stats.now() == kT0);
  CHECK(stats.incarnation() == engine.incarnation());
  CHECK(stats.incarnation() != 0);
  // The resident set of a process running gRPC and a test: more than a megabyte, less
  // than what any test machine has.
  CHECK(stats.memory_bytes() > (1u << 20));
  CHECK(stats.memory_bytes() < (uint64_t{1} << 40));
  // The process's CPU time: it has started gRPC and served calls, and only grows.
  CHECK(stats.cpu_seconds() > 0);
  const double cpu_before = stats.cpu_seconds();

  v1::SetTimeResponse response;
  REQUIRE(SetTime(f, kT0 + kHour, &response).ok());
  REQUIRE(GetStats(f, &stats).ok());
  CHECK(stats.now() == kT0 + kHour);
  CHECK(stats.cpu_seconds() >= cpu_before);
}

TEST_CASE("Admin calls are UNAVAILABLE once the server drains", "[server][admin]") {
  ServerFixture f;
  v1::Stats stats;
  REQUIRE(GetStats(f, &stats).ok());
  f.server->Shutdown(absl::Seconds(1));
  grpc::Status s = GetStats(f, &stats);
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  v1::SetTimeResponse response;
  s = SetTime(f, kT0 + 1, &response);
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(f.server->engine().now() == kT0);
}

}  // namespace
}  // namespace segd::server
