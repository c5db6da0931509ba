// The engine with one thread per shard, as the server runs it: concurrent producers,
// a concurrent subscriber and segment changes during ingest must give the same result
// as a full re-evaluation, and a change stream with no loss and no repeat.
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "core/thread_name.h"
#include "tests/core/engine_fixture.h"

namespace segd::testing {
namespace {

TEST_CASE("ThreadedExecutor runs each shard's tasks in order, and all before it stops",
          "[core][threads]") {
  std::vector<std::vector<int>> seen(3);
  {
    ThreadedExecutor executor(3);
    for (int i = 0; i < 3000; ++i) {
      const int shard = i % 3;
      executor.Post(shard, [&seen, shard, i] { seen[shard].push_back(i); });
    }
  }
  for (int shard = 0; shard < 3; ++shard) {
    REQUIRE(seen[shard].size() == 1000);
    CHECK(std::is_sorted(seen[shard].begin(), seen[shard].end()));
  }
}

TEST_CASE("ThreadedExecutor tells a task how many wait behind it", "[core][threads]") {
  ThreadedExecutor executor(2);
  absl::Notification started, release, done;
  std::vector<size_t> queued_behind;  // written by shard 0's tasks only
  executor.Post(0, [&] {
    started.Notify();
    release.WaitForNotification();
    queued_behind.push_back(executor.Queued(0));
  });
  started.WaitForNotification();
  CHECK(executor.Queued(0) == 0);  // the running task is not waiting
  executor.Post(0, [&] { queued_behind.push_back(executor.Queued(0)); });
  executor.Post(0, [&] { queued_behind.push_back(executor.Queued(0)); });
  executor.Post(0, [&] { done.Notify(); });
  CHECK(executor.Queued(0) == 3);
  CHECK(executor.Queued(1) == 0);  // per shard
  release.Notify();
  done.WaitForNotification();
  CHECK(queued_behind == std::vector<size_t>{3, 2, 1});
}

TEST_CASE("The change listener hears how much work the appending shard has queued",
          "[core][threads]") {
  ThreadedExecutor executor(1);
  ManualClock clock(kT0);
  Engine engine(EngineOptions(), 1, clock, &executor);
  REQUIRE(engine.PutSegment({"big", "n >= 100", ""}, false).ok());
  std::vector<size_t> heard;  // written on the shard's thread only
  engine.SetChangeListener([&](size_t queued) { heard.push_back(queued); });

  absl::Notification started, release;
  executor.Post(0, [&] {
    started.Notify();
    release.WaitForNotification();
  });
  started.WaitForNotification();
  // Three batches queue up behind the blocked task; each makes one change.
  std::vector<absl::Notification> acked(3);
  for (int b = 0; b < 3; ++b) {
    ProfileUpdate u;
    u.key = "k" + std::to_string(b);
    u.set.emplace_back("n", Value::Int(500));
    std::vector<ProfileUpdate> batch;
    batch.push_back(std::move(u));
    engine.ApplyAsync(std::move(batch), [&acked, b](BatchResult) { acked[b].Notify(); });
  }
  release.Notify();
  for (absl::Notification& a : acked) a.WaitForNotification();
  CHECK(heard == std::vector<size_t>{2, 1, 0});
}

TEST_CASE("ThreadedExecutor names each shard's thread after its shard", "[core][threads]") {
  std::vector<std::string> names(12);
  {
    ThreadedExecutor executor(12);
    for (int shard = 0; shard < 12; ++shard) {
      executor.Post(shard, [&names, shard] { names[shard] = ThisThreadName(); });
    }
  }
  CHECK(names[0] == "segd-shard-0");
  CHECK(names[11] == "segd-shard-11");
}

TEST_CASE("NameThisThread keeps the 15 bytes Linux keeps", "[core][threads]") {
  std::string name;
  std::thread([&name] {
    NameThisThread("segd-a-very-long-thread-name");
    name = ThisThreadName();
  }).join();
  CHECK(name == "segd-a-very-lon");
}

ProfileUpdate Update(int producer, int i) {
  ProfileUpdate u;
  u.key = "p" + std::to_string(producer) + "-" + std::to_string(i % 50);
  u.set = {{"n", Value::Int(i)}};
  u.events.push_back(MakeEvent(i % 3 == 0 ? "buy" : "view", kT0 - (i % 7) * kHour));
  return u;
}

TEST_CASE("Concurrent producers, a subscriber and segment puts agree with a full evaluation",
          "[core][threads]") {
  ThreadedExecutor executor(4);
  ManualClock clock(kT0);
  EngineOptions options;
  options.change_log_capacity = 1 << 22;
  Engine engine(options, 4, clock, &executor);
  REQUIRE(engine.PutSegment({"even", "n % 2 = 0", ""}, false).status().code() ==
          absl::StatusCode::kInvalidArgument);  // no % operator: the rule is rejected
  REQUIRE(engine.PutSegment({"big", "n >= 100", ""}, false).ok());
  REQUIRE(engine.PutSegment({"buyer", "count(buy within 1d) >= 2", ""}, false).ok());

  const Cursor start = engine.CurrentCursor();
  // Catch2's assertions are not thread-safe: threads record, the test thread checks.
  std::atomic<bool> producing{true};
  std::atomic<int> failures{0};
  std::vector<Change> streamed;
  std::thread subscriber([&] {
    Cursor cursor = start;
    while (true) {
      const bool last_round = !producing.load();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (!engine.ReadChanges(&cursor, 10'000, nullptr, &streamed).ok()) ++failures;
      if (last_round) break;
    }
  });

  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&engine, &failures, p] {
      for (int batch = 0; batch < 20; ++batch) {
        std::vector<ProfileUpdate> updates;
        for (int i = batch * 25; i < (batch + 1) * 25; ++i) updates.push_back(Update(p, i));
        if (p == 0) {  // one producer uses the asynchronous API
          absl::Notification acked;
          engine.ApplyAsync(std::move(updates), [&](BatchResult r) {
            if (!r.errors.empty()) ++failures;
            acked.Notify();
          });
          acked.WaitForNotification();
        } else if (!engine.Apply(updates).errors.empty()) {
          ++failures;
        }
      }
    });
  }
  // A segment defined, replaced and deleted while the producers run.
  REQUIRE(engine.PutSegment({"viewer", "did(view within 3h)", ""}, false).ok());
  REQUIRE(engine.PutSegment({"viewer_big", "in_segment(\"viewer\") and n >= 200", ""}, false).ok());
  REQUIRE(engine.PutSegment({"viewer", "did(view within 5h)", ""}, false).ok());
  REQUIRE(engine.PutSegment({"temp", "n < 10", ""}, false).ok());
  REQUIRE(engine.DeleteSegment("temp").ok());
  for (std::thread& t : producers) t.join();
  REQUIRE(engine.SetTime(kT0 + 2 * kHour).ok());
  producing = false;
  subscriber.join();
  REQUIRE(failures == 0);

  // Every maintained membership equals a from-scratch evaluation.
  std::set<std::pair<std::string, std::string>> members;
  for (const SegmentInfo& s : engine.ListSegments()) {
    absl::StatusOr<std::vector<std::string>> keys = engine.Members(s.id);
    REQUIRE(keys.ok());
    CHECK(keys->size() == s.member_count);
    for (const std::string& k : *keys) members.insert({k, s.id});
    absl::StatusOr<CountResult> c = engine.Count(s.rule);
    REQUIRE(c.ok());
    CHECK(c->matched == s.member_count);
    CHECK(c->total == 200);
  }
  // The stream, applied to an empty set, yields the same memberships, with strict
  // ENTER/EXIT alternation per (key, segment).
  std::set<std::pair<std::string, std::string>> replayed;
  for (const Change& c : streamed) {
    INFO(Describe(c));
    auto key = std::make_pair(c.key, c.segment);
    if (c.kind == ChangeKind::kEnter) {
      REQUIRE(replayed.insert(key).second);
    } else {
      REQUIRE(replayed.erase(key) == 1);
    }
  }
  CHECK(replayed == members);
  CHECK(engine.Stats().profiles == 200);
}

TEST_CASE("A snapshot cut during ingest loses and repeats nothing", "[core][threads]") {
  ThreadedExecutor executor(2);
  ManualClock clock(kT0);
  Engine engine(EngineOptions{}, 2, clock, &executor);
  REQUIRE(engine.PutSegment({"big", "n >= 50", ""}, false).ok());
  std::atomic<int> failures{0};
  std::thread producer([&] {
    for (int i = 0; i < 2000; ++i) {
      std::vector<ProfileUpdate> one = {Update(0, i)};
      one[0].set = {{"n", Value::Int(i % 100)}};
      if (!engine.Apply(one).errors.empty()) ++failures;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Snapshot snap = engine.TakeSnapshot(nullptr);
  producer.join();
  REQUIRE(failures == 0);
  std::set<std::string> state;
  std::vector<Change> snapshot;
  Snapshot::Position pos;
  snap.Read(&pos, snap.size(), &snapshot);
  CHECK(snap.Read(&pos, 1, &snapshot) == 0);
  for (const Change& c : snapshot) state.insert(c.key);
  std::vector<Change> live;
  REQUIRE(engine.ReadChanges(&snap.cursor, 1 << 20, nullptr, &live).ok());
  for (const Change& c : live) {
    INFO(Describe(c));
    if (c.kind == ChangeKind::kEnter) {
      REQUIRE(state.insert(c.key).second);
    } else {
      REQUIRE(state.erase(c.key) == 1);
    }
  }
  absl::StatusOr<std::vector<std::string>> members = engine.Members("big");
  REQUIRE(members.ok());
  CHECK(state == std::set<std::string>(members->begin(), members->end()));
}

TEST_CASE("Export in chunks returns every profile once", "[core][threads]") {
  ThreadedExecutor executor(3);
  ManualClock clock(kT0);
  Engine engine(EngineOptions{}, 3, clock, &executor);
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < 500; ++i) updates.push_back(Update(1, i));
  REQUIRE(engine.Apply(updates).errors.empty());
  std::map<std::string, int> seen;
  engine.ForEachProfile([&](ProfileData&& p) { ++seen[p.key]; });
  CHECK(seen.size() == 50);
  for (const auto& [key, n] : seen) CHECK(n == 1);
}

}  // namespace
}  // namespace segd::testing
