#include "client/replayer.h"

#include <catch2/catch.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client/cluster_client.h"
#include "tests/client/test_cluster.h"

namespace segd::client {
namespace {

using testing::FastOptions;
using testing::kPatience;
using testing::PutSegment;
using testing::TestCluster;
using testing::TestOptions;

// A profile with an int attribute and `events` events before kT0.
v1::Profile MakeProfile(const std::string& key, int64_t x, int events = 2) {
  v1::Profile p;
  p.set_key(key);
  (*p.mutable_attributes())["x"].set_int_value(x);
  for (int e = 0; e < events; ++e) {
    v1::Event* event = p.add_events();
    event->set_type("view");
    event->set_time(testing::kT0 - 1000 * (events - e));
  }
  return p;
}

std::unique_ptr<Replayer> NewReplayer(ClusterClient& client, ReplayOptions options) {
  absl::StatusOr<std::unique_ptr<Replayer>> r = client.NewReplayer(options);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *std::move(r);
}

ReplayResult Finish(Replayer& replayer) {
  absl::StatusOr<ReplayResult> result = replayer.Finish();
  INFO(result.status().ToString());
  REQUIRE(result.ok());
  return *std::move(result);
}

// The keys shard s holds, by a direct Export.
std::set<std::string> KeysOf(TestCluster& cluster, int s) {
  std::set<std::string> keys;
  REQUIRE(cluster.client
              ->Export(
                  [&](v1::ExportBatch& batch) {
                    for (const v1::Profile& p : batch.profiles()) keys.insert(p.key());
                    return absl::OkStatus();
                  },
                  s)
              .ok());
  return keys;
}

TEST_CASE("A Replayer sends each profile to its ring shard over several calls and messages",
          "[client][cluster][replay]") {
  TestCluster cluster;
  ReplayOptions options;
  options.streams_per_shard = 3;
  options.message_bytes = 2000;  // a few profiles per message
  std::unique_ptr<Replayer> replayer = NewReplayer(*cluster.client, options);
  std::vector<std::set<std::string>> want(3);
  for (int i = 0; i < 300; ++i) {
    const std::string key = "r" + std::to_string(i);
    want[cluster.ShardOf(key)].insert(key);
    REQUIRE(replayer->Add(MakeProfile(key, i, 3)).ok());
  }
  const ReplayResult result = Finish(*replayer);
  CHECK(result.profiles == 300);
  CHECK(result.events == 900);
  CHECK(result.skipped == 0);
  CHECK(result.errors.empty());
  CHECK(replayer->sent() == 300);
  for (int s = 0; s < 3; ++s) CHECK(KeysOf(cluster, s) == want[s]);

  // A replayed profile replaces the one of its key, and its memberships follow.
  PutSegment(*cluster.client, "big", "x >= 1000");
  std::unique_ptr<Replayer> again = NewReplayer(*cluster.client, {});
  REQUIRE(again->Add(MakeProfile("r7", 5000, 0)).ok());
  CHECK(Finish(*again).profiles == 1);
  v1::GetProfileRequest get;
  get.set_key("r7");
  absl::StatusOr<v1::Profile> r7 = cluster.client->GetProfile(get);
  REQUIRE(r7.ok());
  CHECK(r7->events().empty());
  CHECK(std::vector<std::string>(r7->segments().begin(), r7->segments().end()) ==
        std::vector<std::string>{"big"});
}

TEST_CASE("A Replayer with only_shard replays that shard's share and skips the rest",
          "[client][cluster][replay]") {
  TestCluster cluster;
  ReplayOptions options;
  options.only_shard = 2;
  std::unique_ptr<Replayer> replayer = NewReplayer(*cluster.client, options);
  std::set<std::string> on_2;
  for (int i = 0; i < 120; ++i) {
    const std::string key = "o" + std::to_string(i);
    CHECK(replayer->Accepts(key) == (cluster.ShardOf(key) == 2));
    if (cluster.ShardOf(key) == 2) on_2.insert(key);
    REQUIRE(replayer->Add(MakeProfile(key, i)).ok());
  }
  const ReplayResult result = Finish(*replayer);
  CHECK(result.profiles == on_2.size());
  CHECK(result.skipped == 120 - on_2.size());
  CHECK(KeysOf(cluster, 2) == on_2);
  CHECK(KeysOf(cluster, 0).empty());
  CHECK(KeysOf(cluster, 1).empty());
}

TEST_CASE("A Replayer reports rejected profiles by their index in the caller's order",
          "[client][cluster][replay]") {
  TestCluster cluster;
  ReplayOptions options;
  options.message_bytes = 500;
  std::unique_ptr<Replayer> replayer = NewReplayer(*cluster.client, options);
  const std::set<uint64_t> bad = {5, 77, 78, 150};
  for (uint64_t i = 0; i < 200; ++i) {
    v1::Profile p = MakeProfile("e" + std::to_string(i), 1);
    if (bad.count(i) > 0) (*p.mutable_attributes())["broken"];  // a Value with no kind
    REQUIRE(replayer->Add(std::move(p)).ok());
  }
  const ReplayResult result = Finish(*replayer);
  CHECK(result.profiles == 196);
  REQUIRE(result.errors.size() == 4);
  std::vector<uint64_t> indexes;
  for (const ReplayError& e : result.errors) {
    indexes.push_back(e.index);
    CHECK(e.key == "e" + std::to_string(e.index));
    CHECK_THAT(e.message, Catch::Matchers::Contains("broken"));
  }
  CHECK(indexes == std::vector<uint64_t>(bad.begin(), bad.end()));
}

TEST_CASE("A Replayer refuses alone a profile too large for a message",
          "[client][cluster][replay]") {
  ClusterOptions small = FastOptions();
  small.max_message_bytes = 200'000;
  TestCluster cluster(TestOptions(), small);
  std::unique_ptr<Replayer> replayer = NewReplayer(*cluster.client, {});
  REQUIRE(replayer->Add(MakeProfile("small", 1)).ok());
  v1::Profile huge = MakeProfile("huge", 1);
  (*huge.mutable_attributes())["blob"].set_string_value(std::string(180'000, 'x'));
  REQUIRE(replayer->Add(std::move(huge)).ok());
  const ReplayResult result = Finish(*replayer);
  CHECK(result.profiles == 1);
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].index == 1);
  CHECK(result.errors[0].key == "huge");
  CHECK_THAT(result.errors[0].message, Catch::Matchers::Contains("more than a message may carry"));
}

TEST_CASE("A replay emits REPLAY changes unless quiet", "[client][cluster][replay]") {
  TestCluster cluster;
  PutSegment(*cluster.client, "big", "x >= 10");
  v1::SubscribeRequest request;
  absl::StatusOr<std::unique_ptr<Subscription>> sub = cluster.client->Subscribe(request);
  REQUIRE(sub.ok());
  // Every shard has answered once the merged cursor is known: changes from now on come.
  while (true) {
    absl::StatusOr<MergedBatch> step = (*sub)->Next(absl::Now() + kPatience);
    REQUIRE(step.ok());
    if (!step->batch.cursor().empty()) break;
  }
  ReplayOptions quiet;
  quiet.quiet = true;
  std::unique_ptr<Replayer> silent = NewReplayer(*cluster.client, quiet);
  REQUIRE(silent->Add(MakeProfile("q1", 50)).ok());
  CHECK(Finish(*silent).profiles == 1);
  std::unique_ptr<Replayer> loud = NewReplayer(*cluster.client, {});
  REQUIRE(loud->Add(MakeProfile("q2", 50)).ok());
  CHECK(Finish(*loud).profiles == 1);

  std::vector<v1::Change> changes;
  const absl::Time until = absl::Now() + absl::Seconds(3);  // heartbeats of every shard
  while (absl::Now() < until) {
    absl::StatusOr<MergedBatch> step = (*sub)->Next(until);
    if (!step.ok()) break;
    for (const v1::Change& c : step->batch.changes()) changes.push_back(c);
  }
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].key() == "q2");
  CHECK(changes[0].kind() == v1::CHANGE_KIND_ENTER);
  CHECK(changes[0].cause() == v1::CAUSE_REPLAY);
}

TEST_CASE("A Replayer fails when a shard's call fails, naming the shard",
          "[client][cluster][replay][failure]") {
  TestCluster cluster;
  cluster.Stop(1);
  std::unique_ptr<Replayer> replayer = NewReplayer(*cluster.client, {});
  absl::Status added;
  for (const std::string& key : cluster.KeysOn(1, 5, "d")) {
    added = replayer->Add(MakeProfile(key, 1));
    if (!added.ok()) break;
  }
  absl::StatusOr<ReplayResult> result = replayer->Finish();
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(result.status().message()),
             Catch::Matchers::StartsWith("Ingest.Replay on " + cluster.addresses[1] + ": "));
  CHECK(replayer->Finish().status() == result.status());  // idempotent
}

TEST_CASE("NewReplayer checks its options", "[client][cluster][replay]") {
  TestCluster cluster;
  ReplayOptions no_streams;
  no_streams.streams_per_shard = 0;
  CHECK(cluster.client->NewReplayer(no_streams).status().code() ==
        absl::StatusCode::kInvalidArgument);
  ReplayOptions no_bytes;
  no_bytes.message_bytes = 0;
  CHECK(cluster.client->NewReplayer(no_bytes).status().code() ==
        absl::StatusCode::kInvalidArgument);
  ReplayOptions bad_shard;
  bad_shard.only_shard = 3;
  const absl::Status status = cluster.client->NewReplayer(bad_shard).status();
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(status.message()), Catch::Matchers::Contains("shard 3 is not in 0..2"));
}

}  // namespace
}  // namespace segd::client
