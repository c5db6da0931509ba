#include "client/subscription.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/cluster_cursor.h"
#include "tests/client/test_cluster.h"

namespace segd::client {
namespace {

using testing::FastOptions;
using testing::Ingest;
using testing::Keys;
using testing::kPatience;
using testing::PutSegment;
using testing::ServerOptions;
using testing::SetInt;
using testing::TestCluster;
using testing::TestOptions;
using Kind = MergedBatch::Kind;
absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(ClusterClient& client,
                                                        std::string cursor = "",
                                                        bool snapshot = false) {
  v1::SubscribeRequest request;
  request.set_cursor(std::move(cursor));
  request.set_snapshot(snapshot);
  return client.Subscribe(request);
}

MergedBatch NextStep(Subscription& sub) {
  absl::StatusOr<MergedBatch> step = sub.Next(absl::Now() + kPatience);
  INFO(step.status().ToString());
  REQUIRE(step.ok());
  return *std::move(step);
}

// The next step of `shard`; those of other shards meanwhile must be heartbeats.
MergedBatch NextOf(Subscription& sub, int shard) {
  while (true) {
    MergedBatch step = NextStep(sub);
    if (step.shard == shard) return step;
    CHECK(step.kind == Kind::kChanges);
    CHECK(step.batch.changes().empty());
  }
}

// Reads until the merged cursor is known: every shard has answered, so changes made
// from now on are delivered.
std::string WaitForCursor(Subscription& sub) {
  while (true) {
    MergedBatch step = NextStep(sub);
    CHECK(step.kind == Kind::kChanges);
    CHECK(step.batch.changes().empty());
    if (!step.batch.cursor().empty()) return step.batch.cursor();
  }
}

using ChangeSet = std::multiset<std::pair<std::string, int>>;  // (key, kind)

// Reads steps until every shard s has delivered expected[s] changes and then a
// heartbeat: a stream sends a heartbeat only when it has nothing more, so every change
// logged before was delivered, and any repeat would have come too. Collects the
// changes into `changes` and returns the last merged cursor.
std::string Drain(Subscription& sub, const TestCluster& cluster,
                  const std::vector<size_t>& expected, ChangeSet* changes) {
  std::vector<size_t> got(expected.size(), 0);
  std::vector<bool> quiet(expected.size(), false);
  std::string cursor;
  while (std::count(quiet.begin(), quiet.end(), true) < static_cast<long>(quiet.size())) {
    MergedBatch step = NextStep(sub);
    REQUIRE(step.kind == Kind::kChanges);
    cursor = step.batch.cursor();
    for (const v1::Change& c : step.batch.changes()) {
      CHECK(cluster.ShardOf(c.key()) == step.shard);
      changes->emplace(c.key(), c.kind());
      ++got[step.shard];
    }
    if (step.batch.changes().empty() && got[step.shard] >= expected[step.shard]) {
      quiet[step.shard] = true;
    }
  }
  CHECK(got == expected);
  return cursor;
}

std::vector<size_t> PerShard(const TestCluster& cluster, const ChangeSet& changes) {
  std::vector<size_t> n(3, 0);
  for (const auto& [key, kind] : changes) ++n[cluster.ShardOf(key)];
  return n;
}

ChangeSet Changes(const std::vector<std::string>& keys, v1::ChangeKind kind) {
  ChangeSet set;
  for (const std::string& k : keys) set.emplace(k, kind);
  return set;
}

// ---- Subscriptions ----

TEST_CASE("A merged subscription sends every shard's snapshot, then live changes",
          "[client][cluster][subscribe]") {
  TestCluster cluster;
  PutSegment(*cluster.client, "big", "x >= 10");
  std::vector<v1::ProfileUpdate> updates;
  for (const std::string& k : Keys("s", 40)) updates.push_back(SetInt(k, "x", 20));
  Ingest(*cluster.client, std::move(updates));

  absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client, "", true);
  REQUIRE(sub.ok());
  ChangeSet snapshot;
  std::set<int> shards_done;
  std::string cursor;
  while (true) {
    MergedBatch step = NextStep(**sub);
    REQUIRE(step.kind == Kind::kChanges);
    CHECK(step.address == cluster.addresses[step.shard]);
    for (const v1::Change& c : step.batch.changes()) {
      CHECK(c.cause() == v1::CAUSE_SNAPSHOT);
      CHECK(cluster.ShardOf(c.key()) == step.shard);
      snapshot.emplace(c.key(), c.kind());
    }
    if (step.shard_snapshot_done) CHECK(shards_done.insert(step.shard).second);
    if (step.batch.snapshot_done()) {
      cursor = step.batch.cursor();
      break;
    }
    CHECK(step.batch.cursor().empty());  // no position until every shard's snapshot is done
  }
  CHECK(shards_done.size() == 3);
  CHECK(snapshot == Changes(Keys("s", 40), v1::CHANGE_KIND_ENTER));
  absl::StatusOr<ClusterCursor> decoded = ClusterCursor::Decode(cursor);
  REQUIRE(decoded.ok());
  REQUIRE(decoded->shards.size() == 3);
  for (int s = 0; s < 3; ++s) {
    CHECK(decoded->shards[s].address == cluster.addresses[s]);
    CHECK_FALSE(decoded->shards[s].cursor.empty());
  }

  // Live: 15 exits and 10 new members.
  updates.clear();
  for (const std::string& k : Keys("s", 15)) updates.push_back(SetInt(k, "x", 0));
  for (const std::string& k : Keys("t", 10)) updates.push_back(SetInt(k, "x", 50));
  Ingest(*cluster.client, std::move(updates));
  ChangeSet want = Changes(Keys("s", 15), v1::CHANGE_KIND_EXIT);
  for (const auto& c : Changes(Keys("t", 10), v1::CHANGE_KIND_ENTER)) want.insert(c);
  ChangeSet live;
  Drain(**sub, cluster, PerShard(cluster, want), &live);
  CHECK(live == want);
}

TEST_CASE("Resuming a merged subscription from its cursor loses and repeats nothing",
          "[client][cluster][subscribe]") {
  TestCluster cluster;
  PutSegment(*cluster.client, "big", "x >= 10");
  absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client);
  REQUIRE(sub.ok());
  WaitForCursor(**sub);

  // Phase A: 60 ENTERs in 6 batches.
  const std::vector<std::string> keys = Keys("r", 60);
  for (int b = 0; b < 6; ++b) {
    std::vector<v1::ProfileUpdate> updates;
    for (int i = 0; i < 10; ++i) updates.push_back(SetInt(keys[b * 10 + i], "x", 20));
    Ingest(*cluster.client, std::move(updates));
  }
  // Stop somewhere in the middle, at a step boundary.
  ChangeSet before;
  std::string cursor;
  while (before.size() < 20) {
    MergedBatch step = NextStep(**sub);
    for (const v1::Change& c : step.batch.changes()) before.emplace(c.key(), c.kind());
    cursor = step.batch.cursor();
  }
  REQUIRE_FALSE(cursor.empty());
  sub->reset();

  // Phase B, while no one listens: 30 EXITs.
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 30; ++i) updates.push_back(SetInt(keys[i], "x", 0));
  Ingest(*cluster.client, std::move(updates));

  ChangeSet all = Changes(keys, v1::CHANGE_KIND_ENTER);
  for (int i = 0; i < 30; ++i) all.emplace(keys[i], v1::CHANGE_KIND_EXIT);
  ChangeSet rest = all;
  for (const auto& c : before) {
    auto it = rest.find(c);
    REQUIRE(it != rest.end());
    rest.erase(it);
  }

  absl::StatusOr<std::unique_ptr<Subscription>> resumed = Subscribe(*cluster.client, cursor);
  REQUIRE(resumed.ok());
  ChangeSet after;
  Drain(**resumed, cluster, PerShard(cluster, rest), &after);
  CHECK(after == rest);
}

TEST_CASE("A shard whose cursor is out of range is re-snapshot alone, and the caller told",
          "[client][cluster][subscribe]") {
  ServerOptions options = TestOptions();
  options.engine.change_log_capacity = 10;
  TestCluster cluster(options);
  PutSegment(*cluster.client, "big", "x >= 10");
  const std::vector<std::string> busy = cluster.KeysOn(1, 100, "b");  // shard 1 only
  const std::vector<std::string> calm = {cluster.KeysOn(0, 1, "c")[0],
                                         cluster.KeysOn(2, 1, "c")[0]};

  std::string cursor;
  {
    absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client);
    REQUIRE(sub.ok());
    cursor = WaitForCursor(**sub);
  }
  // While no one listens, shard 1 logs far more than its log holds; the others a little.
  std::vector<v1::ProfileUpdate> updates;
  for (const std::string& k : busy) updates.push_back(SetInt(k, "x", 20));
  for (const std::string& k : calm) updates.push_back(SetInt(k, "x", 20));
  Ingest(*cluster.client, std::move(updates));

  absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client, cursor);
  REQUIRE(sub.ok());
  ChangeSet live;
  ChangeSet resnapshot;
  bool noticed = false;
  bool shard1_done = false;
  bool merged_snapshot_done = false;
  std::string during;  // a merged cursor taken during shard 1's re-snapshot
  std::vector<bool> quiet(3, false);
  while (!(shard1_done && quiet[0] && quiet[2])) {
    MergedBatch step = NextStep(**sub);
    if (step.kind == Kind::kResnapshot) {
      REQUIRE(step.shard == 1);
      CHECK_FALSE(noticed);
      noticed = true;
      CHECK(step.address == cluster.addresses[1]);
      CHECK(step.reason.code() == absl::StatusCode::kOutOfRange);
      CHECK(step.reason.message().find("Changes.Subscribe on " + cluster.addresses[1]) == 0);
      during = step.batch.cursor();
      continue;
    }
    REQUIRE(step.kind == Kind::kChanges);
    for (const v1::Change& c : step.batch.changes()) {
      if (step.shard == 1) {
        CHECK(noticed);
        CHECK(c.cause() == v1::CAUSE_SNAPSHOT);
        resnapshot.emplace(c.key(), c.kind());
      } else {
        CHECK(c.cause() == v1::CAUSE_UPDATE);
        live.emplace(c.key(), c.kind());
      }
    }
    if (step.shard == 1 && step.shard_snapshot_done) shard1_done = true;
    if (step.batch.snapshot_done()) merged_snapshot_done = true;
    if (step.shard != 1 && step.batch.changes().empty() && live.size() == 2)
      quiet[step.shard] = true;
  }
  CHECK(resnapshot == Changes(busy, v1::CHANGE_KIND_ENTER));
  CHECK(live == Changes(calm, v1::CHANGE_KIND_ENTER));
  CHECK_FALSE(merged_snapshot_done);  // that flag is for a snapshot the caller asked for

  // A cursor taken during the re-snapshot holds no position for shard 1, so resuming
  // from it re-snapshots shard 1 again, and says why.
  absl::StatusOr<ClusterCursor> decoded = ClusterCursor::Decode(during);
  REQUIRE(decoded.ok());
  CHECK_FALSE(decoded->shards[0].cursor.empty());
  CHECK(decoded->shards[1].cursor.empty());
  CHECK_FALSE(decoded->shards[2].cursor.empty());
  sub->reset();
  absl::StatusOr<std::unique_ptr<Subscription>> again = Subscribe(*cluster.client, during);
  REQUIRE(again.ok());
  const MergedBatch first = NextOf(**again, 1);
  CHECK(first.kind == Kind::kResnapshot);
  CHECK(first.reason.code() == absl::StatusCode::kFailedPrecondition);
  ChangeSet again_snapshot;
  while (true) {
    MergedBatch step = NextStep(**again);
    if (step.shard != 1) continue;
    for (const v1::Change& c : step.batch.changes()) again_snapshot.emplace(c.key(), c.kind());
    if (step.shard_snapshot_done) break;
  }
  CHECK(again_snapshot == resnapshot);
}

TEST_CASE("A merged subscription reconnects to a shard that restarted and re-snapshots it",
          "[client][cluster][subscribe][failure]") {
  TestCluster cluster;
  PutSegment(*cluster.client, "big", "x >= 10");
  absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client);
  REQUIRE(sub.ok());
  WaitForCursor(**sub);

  cluster.Stop(2);
  MergedBatch step = NextOf(**sub, 2);
  REQUIRE(step.kind == Kind::kReconnecting);
  CHECK(step.shard == 2);
  CHECK(step.reason.code() == absl::StatusCode::kUnavailable);
  CHECK(step.reason.message().find("Changes.Subscribe on " + cluster.addresses[2] + ": ") == 0);

  // A new server on the same port: empty, another incarnation. The subscription finds it
  // (retrying with backoff meanwhile), its cursor is out of range there, and shard 2 is
  // re-snapshot — of nothing yet, as the new shard holds no segment.
  cluster.Restart(2);
  do {
    step = NextOf(**sub, 2);
  } while (step.kind == Kind::kReconnecting);
  REQUIRE(step.kind == Kind::kResnapshot);
  CHECK(step.reason.code() == absl::StatusCode::kOutOfRange);
  do {
    step = NextOf(**sub, 2);
    REQUIRE(step.kind == Kind::kChanges);
    CHECK(step.batch.changes().empty());
  } while (!step.shard_snapshot_done);

  // Live changes flow from every shard again, the restarted one included.
  PutSegment(*cluster.client, "big", "x >= 10");
  std::vector<std::string> keys;
  for (int s = 0; s < 3; ++s) keys.push_back(cluster.KeysOn(s, 1, "after")[0]);
  std::vector<v1::ProfileUpdate> updates;
  for (const std::string& k : keys) updates.push_back(SetInt(k, "x", 20));
  Ingest(*cluster.client, std::move(updates));
  ChangeSet live;
  Drain(**sub, cluster, {1, 1, 1}, &live);
  CHECK(live == Changes(keys, v1::CHANGE_KIND_ENTER));
}

TEST_CASE("A subscription that began with a snapshot resumes by cursor after a break",
          "[client][cluster][subscribe][failure]") {
  TestCluster cluster;
  PutSegment(*cluster.client, "big", "x >= 10");
  std::vector<std::string> members;
  for (int s = 0; s < 3; ++s) members.push_back(cluster.KeysOn(s, 1, "m")[0]);
  std::vector<v1::ProfileUpdate> updates;
  for (const std::string& k : members) updates.push_back(SetInt(k, "x", 20));
  Ingest(*cluster.client, std::move(updates));
  absl::StatusOr<std::unique_ptr<Subscription>> sub =
      Subscribe(*cluster.client, "", /*snapshot=*/true);
  REQUIRE(sub.ok());
  ChangeSet snapshot;
  bool done = false;
  while (!done) {
    MergedBatch step = NextStep(**sub);
    REQUIRE(step.kind == Kind::kChanges);
    for (const v1::Change& c : step.batch.changes()) snapshot.emplace(c.key(), c.kind());
    done = step.batch.snapshot_done();
  }
  CHECK(snapshot == Changes(members, v1::CHANGE_KIND_ENTER));

  // Shard 2 restarts: its old cursor is out of range, so it alone is re-snapshot, and the
  // caller is told; a silent second snapshot would repeat ENTERs of members.
  cluster.Stop(2);
  cluster.Restart(2);
  MergedBatch step;
  do {
    step = NextOf(**sub, 2);
  } while (step.kind == Kind::kReconnecting);
  REQUIRE(step.kind == Kind::kResnapshot);
  CHECK(step.reason.code() == absl::StatusCode::kOutOfRange);
  do {
    step = NextOf(**sub, 2);
    REQUIRE(step.kind == Kind::kChanges);
  } while (!step.shard_snapshot_done);

  // The shards that stayed up go on from their cursors: a change, and nothing repeated.
  Ingest(*cluster.client, {SetInt(members[0], "x", 1), SetInt(members[1], "x", 1)}, 2);
  ChangeSet live;
  Drain(**sub, cluster, {1, 1, 0}, &live);
  CHECK(live == Changes({members[0], members[1]}, v1::CHANGE_KIND_EXIT));
}

// A Changes service that accepts every Subscribe and never sends a thing, as a server
// behind a broken network would look.
class SilentChanges final : public v1::Changes::Service {
 public:
  grpc::Status Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest*,
                         grpc::ServerWriter<v1::ChangeBatch>*) override {
    ++calls;
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::CANCELLED;
  }
  std::atomic<int> calls{0};
};

TEST_CASE("A merged subscription reopens a stream that brings nothing, not even heartbeats",
          "[client][cluster][subscribe][failure]") {
  SilentChanges silent;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&silent);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);

  ClusterOptions options = FastOptions();
  options.idle_timeout = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<ClusterClient>> client =
      ClusterClient::Create({"127.0.0.1:" + std::to_string(port)}, options);
  REQUIRE(client.ok());
  {
    absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(**client);
    REQUIRE(sub.ok());
    for (int i = 0; i < 2; ++i) {
      MergedBatch step = NextStep(**sub);
      CHECK(step.kind == Kind::kReconnecting);
      CHECK(step.reason.code() == absl::StatusCode::kUnavailable);
      CHECK(step.reason.message().find("no batch or heartbeat for 200ms") != std::string::npos);
    }
    CHECK(silent.calls >= 2);
  }
  server->Shutdown();
}

TEST_CASE("A merged subscription ends on an error no retry can fix",
          "[client][cluster][subscribe]") {
  TestCluster cluster;
  v1::SubscribeRequest request;
  request.add_segments("not an id!");
  absl::StatusOr<std::unique_ptr<Subscription>> sub = cluster.client->Subscribe(request);
  REQUIRE(sub.ok());
  absl::StatusOr<MergedBatch> step = (*sub)->Next(absl::Now() + kPatience);
  REQUIRE(step.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(step.status().message().find("Changes.Subscribe on 127.0.0.1:") == 0);
  // It stays ended.
  CHECK((*sub)->Next(absl::Now() + kPatience).status() == step.status());
}

TEST_CASE("A merged subscription can be cancelled while Next waits",
          "[client][cluster][subscribe]") {
  TestCluster cluster;
  absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client);
  REQUIRE(sub.ok());
  WaitForCursor(**sub);
  absl::StatusOr<MergedBatch> idle;
  do {
    idle = (*sub)->Next(absl::Now() + absl::Milliseconds(1));
  } while (idle.ok());  // heartbeats
  CHECK(idle.status().code() == absl::StatusCode::kDeadlineExceeded);
  std::thread cancel([&] {
    absl::SleepFor(absl::Milliseconds(50));  // most likely while Next waits; either way
    (*sub)->Cancel();
  });
  absl::StatusOr<MergedBatch> step;
  do {
    step = (*sub)->Next();
  } while (step.ok());  // heartbeats may come first
  CHECK(step.status().code() == absl::StatusCode::kCancelled);
  cancel.join();
}

TEST_CASE("Subscribe refuses a cursor of other servers", "[client][cluster][subscribe]") {
  TestCluster cluster;
  ClusterCursor foreign;
  for (const std::string& address :
       {cluster.addresses[0], cluster.addresses[1], std::string("10.9.9.9:7070")}) {
    foreign.shards.push_back({address, "x"});
  }
  absl::StatusOr<std::unique_ptr<Subscription>> sub = Subscribe(*cluster.client, foreign.Encode());
  REQUIRE(sub.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(sub.status().message() ==
        "cluster cursor: it holds a position for 10.9.9.9:7070, not a server of this cluster");
  foreign.shards.pop_back();
  sub = Subscribe(*cluster.client, foreign.Encode());
  REQUIRE(sub.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(sub.status().message() ==
        "cluster cursor: it holds no position for " + cluster.addresses[2]);
  CHECK(Subscribe(*cluster.client, "%%%").status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segd::client
