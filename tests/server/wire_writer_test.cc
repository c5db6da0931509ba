// Change batches written without messages (server/wire_writer.h) against the generated
// code: the same bytes, for every kind of change the log can hold.
#include "server/wire_writer.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "segd/v1/segd.pb.h"
#include "server/convert.h"

namespace segd::server {
namespace {

// What the generated code writes for `changes`, `cursor` and `snapshot_done`.
std::string Generated(const std::vector<Change>& changes, const std::string& cursor,
                      bool snapshot_done) {
  v1::ChangeBatch batch;
  for (const Change& c : changes) {
    v1::Change* out = batch.add_changes();
    out->set_key(c.key);
    out->set_segment(c.segment);
    out->set_kind(ToProto(c.kind));
    out->set_time(c.time);
    out->set_cause(ToProto(c.cause));
  }
  batch.set_cursor(cursor);
  batch.set_snapshot_done(snapshot_done);
  std::string bytes;
  REQUIRE(batch.SerializeToString(&bytes));
  return bytes;
}

std::string Written(const std::vector<Change>& changes, const std::string& cursor,
                    bool snapshot_done) {
  std::string bytes;
  for (const Change& c : changes) wire::AppendBatchChange(ChangeView(c), &bytes);
  wire::AppendBatchEnd(cursor, snapshot_done, &bytes);
  return bytes;
}

TEST_CASE("Change batches are written as the generated code writes them", "[server][wire]") {
  SECTION("one change of each kind and cause, and the batch's ends") {
    const Cause causes[] = {Cause::kUpdate,        Cause::kTime,   Cause::kSegmentPut,
                            Cause::kSegmentDelete, Cause::kReplay, Cause::kProfileDelete,
                            Cause::kSnapshot};
    std::vector<Change> changes;
    for (Cause cause : causes) {
      changes.push_back({"user-1", "vip", ChangeKind::kEnter, 1234, cause});
      changes.push_back({"user-2", "dormant", ChangeKind::kExit, 1'700'000'000'000, cause});
    }
    CHECK(Written(changes, "", false) == Generated(changes, "", false));
    CHECK(Written(changes, "cursor-bytes", false) == Generated(changes, "cursor-bytes", false));
    CHECK(Written({}, "c", true) == Generated({}, "c", true));    // a snapshot's end
    CHECK(Written({}, "c", false) == Generated({}, "c", false));  // a heartbeat
    CHECK(Written({}, "", false).empty());
  }

  SECTION("times of 0 and below, and the varints' boundaries") {
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    const int64_t times[] = {0, 1, 127, 128, 16'383, 16'384, -1, -1'000, kMin, kMax};
    for (int64_t t : times) {
      INFO(t);
      const std::vector<Change> one = {{"k", "s", ChangeKind::kEnter, t, Cause::kTime}};
      CHECK(Written(one, "x", false) == Generated(one, "x", false));
    }
  }

  SECTION("random keys, segments and cursors, lengths across one- and two-byte prefixes") {
    std::mt19937 rng(20261122);
    auto text = [&](size_t max) {
      std::string s(std::uniform_int_distribution<size_t>(1, max)(rng), 'a');
      for (char& c : s) c = static_cast<char>('a' + rng() % 26);
      return s;
    };
    for (int round = 0; round < 200; ++round) {
      std::vector<Change> changes(rng() % 40);
      for (Change& c : changes) {
        c.key = text(300);
        c.segment = text(140);
        c.kind = rng() % 2 == 0 ? ChangeKind::kEnter : ChangeKind::kExit;
        c.time = static_cast<int64_t>(rng()) * static_cast<int64_t>(rng() % 1'000'000);
        c.cause = static_cast<Cause>(1 + rng() % 7);
      }
      const std::string cursor = rng() % 4 == 0 ? "" : text(200);
      const bool done = rng() % 3 == 0;
      REQUIRE(Written(changes, cursor, done) == Generated(changes, cursor, done));
    }
  }
}

TEST_CASE("Varints are sized as they are written", "[server][wire]") {
  constexpr uint64_t k35 = uint64_t{1} << 35;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t values[] = {0, 1, 127, 128, 16'383, 16'384, k35 - 1, k35, kMax};
  for (uint64_t v : values) {
    std::string bytes;
    wire::AppendVarint(v, &bytes);
    INFO(v);
    CHECK(bytes.size() == wire::VarintSize(v));
  }
}

}  // namespace
}  // namespace segd::server
