#include "client/producer.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/client/test_cluster.h"

namespace segd::client {
namespace {

using testing::Batch;
using testing::Ingest;
using testing::Invalid;
using testing::Keys;
using testing::kPatience;
using testing::SetInt;
using testing::TestCluster;

// ---- Ingest ----

TEST_CASE("Ingest through the cluster lands each key on its ring shard only",
          "[client][cluster][ingest]") {
  TestCluster cluster;
  std::vector<v1::ProfileUpdate> updates;
  const std::vector<std::string> keys = Keys("u", 300);
  for (const std::string& k : keys) updates.push_back(SetInt(k, "age", 30));
  const v1::Ack ack = Ingest(*cluster.client, std::move(updates), 77);
  CHECK(ack.seq() == 77);
  CHECK(ack.applied() == 300);

  std::vector<uint64_t> per_shard(3, 0);
  for (const std::string& key : keys) {
    const int home = cluster.ShardOf(key);
    ++per_shard[home];
    for (int s = 0; s < 3; ++s) {
      INFO(key << " on shard " << s << ", home " << home);
      CHECK(cluster.ProfileOn(s, key) ==
            (s == home ? grpc::StatusCode::OK : grpc::StatusCode::NOT_FOUND));
    }
  }
  // Every shard got some: the test did route, not send everything to one place.
  for (uint64_t n : per_shard) CHECK(n > 50);

  v1::GetProfileRequest get;
  get.set_key("u42");
  absl::StatusOr<v1::Profile> profile = cluster.client->GetProfile(get);
  REQUIRE(profile.ok());
  CHECK(profile->attributes().at("age").int_value() == 30);

  absl::StatusOr<ClusterStats> stats = cluster.client->GetStats();
  REQUIRE(stats.ok());
  CHECK(stats->total.profiles() == 300);
  CHECK(stats->total.updates_applied() == 300);
  REQUIRE(stats->shards.size() == 3);
  for (int s = 0; s < 3; ++s) CHECK(stats->shards[s].profiles() == per_shard[s]);
}

TEST_CASE("A Producer merges the shards' Acks per batch, rejections at the caller's indices",
          "[client][cluster][ingest]") {
  TestCluster cluster;
  std::unique_ptr<Producer> producer = cluster.client->NewProducer();

  // Rejected updates at indices 3, 10, 17 and 25, alternately on shards 0 and 1 (the
  // ring depends on the servers' ports, so the keys are chosen by shard).
  const std::vector<std::string> on0 = cluster.KeysOn(0, 2, "bad");
  const std::vector<std::string> on1 = cluster.KeysOn(1, 2, "bad");
  const std::map<uint32_t, std::string> bad = {
      {3, on0[0]}, {10, on1[0]}, {17, on0[1]}, {25, on1[1]}};
  std::vector<v1::ProfileUpdate> updates;
  for (uint32_t i = 0; i < 30; ++i) {
    if (auto it = bad.find(i); it != bad.end()) {
      updates.push_back(Invalid(it->second));
    } else {
      updates.push_back(SetInt("p" + std::to_string(i), "n", i));
    }
  }

  std::future<absl::StatusOr<v1::Ack>> first = producer->Send(Batch(42, std::move(updates)));
  std::future<absl::StatusOr<v1::Ack>> empty = producer->Send(Batch(43, {}));
  std::future<absl::StatusOr<v1::Ack>> last =
      producer->Send(Batch(44, {SetInt("p0", "n", 100), SetInt("p1", "n", 101)}));

  absl::StatusOr<v1::Ack> ack = first.get();
  REQUIRE(ack.ok());
  CHECK(ack->seq() == 42);
  CHECK(ack->applied() == 26);
  REQUIRE(ack->errors_size() == 4);
  auto index = bad.begin();
  for (const v1::UpdateError& e : ack->errors()) {
    CHECK(e.index() == index->first);
    CHECK(e.key() == index->second);
    CHECK_FALSE(e.message().empty());
    ++index;
  }
  absl::StatusOr<v1::Ack> none = empty.get();
  REQUIRE(none.ok());
  CHECK(none->seq() == 43);
  CHECK(none->applied() == 0);
  absl::StatusOr<v1::Ack> later = last.get();
  REQUIRE(later.ok());
  CHECK(later->seq() == 44);
  CHECK(later->applied() == 2);
  REQUIRE(producer->Close().ok());

  // The second batch applied after the first, key by key.
  v1::GetProfileRequest get;
  get.set_key("p1");
  CHECK(cluster.client->GetProfile(get)->attributes().at("n").int_value() == 101);

  absl::StatusOr<v1::Ack> closed = producer->Send(Batch(45, {SetInt("p0", "n", 1)})).get();
  CHECK(closed.status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("A Producer keeps the order of each key over many pipelined batches",
          "[client][cluster][ingest]") {
  TestCluster cluster;
  std::unique_ptr<Producer> producer = cluster.client->NewProducer();
  std::vector<std::future<absl::StatusOr<v1::Ack>>> acks;
  for (int round = 1; round <= 100; ++round) {
    std::vector<v1::ProfileUpdate> updates;
    for (const std::string& key : Keys("o", 20)) updates.push_back(SetInt(key, "round", round));
    acks.push_back(producer->Send(Batch(round, std::move(updates))));
  }
  producer->Flush();
  for (size_t i = 0; i < acks.size(); ++i) {
    REQUIRE(acks[i].wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    absl::StatusOr<v1::Ack> ack = acks[i].get();
    REQUIRE(ack.ok());
    CHECK(ack->seq() == i + 1);
    CHECK(ack->applied() == 20);
  }
  for (const std::string& key : Keys("o", 20)) {
    v1::GetProfileRequest get;
    get.set_key(key);
    CHECK(cluster.client->GetProfile(get)->attributes().at("round").int_value() == 100);
  }
  REQUIRE(producer->Close().ok());
}

TEST_CASE("A Producer reopens the stream of a shard that restarted", "[client][cluster][failure]") {
  TestCluster cluster;
  const std::string key = cluster.KeysOn(2, 1)[0];
  std::unique_ptr<Producer> producer = cluster.client->NewProducer();
  REQUIRE(producer->Send(Batch(1, {SetInt(key, "n", 1)})).get().ok());
  cluster.Stop(2);
  CHECK(producer->Send(Batch(2, {SetInt(key, "n", 2)})).get().status().code() ==
        absl::StatusCode::kUnavailable);
  cluster.Restart(2);
  // The channel reconnects with backoff: retry until the new server takes the batch.
  const absl::Time give_up = absl::Now() + kPatience;
  absl::StatusOr<v1::Ack> ack;
  do {
    ack = producer->Send(Batch(3, {SetInt(key, "n", 3)})).get();
  } while (!ack.ok() && absl::Now() < give_up);
  REQUIRE(ack.ok());
  CHECK(ack->applied() == 1);
  CHECK(cluster.ProfileOn(2, key) == grpc::StatusCode::OK);
  CHECK(producer->Close().ok());
}

}  // namespace
}  // namespace segd::client
