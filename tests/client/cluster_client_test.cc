#include "client/cluster_client.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/client/test_cluster.h"

namespace segd::client {
namespace {

using testing::Batch;
using testing::Ingest;
using testing::kHour;
using testing::kT0;
using testing::PutSegment;
using testing::SetInt;
using testing::TestCluster;

// ---- Create ----

TEST_CASE("ClusterClient::Create checks the server list", "[client][cluster]") {
  auto error = [](std::vector<std::string> servers) {
    absl::StatusOr<std::unique_ptr<ClusterClient>> c = ClusterClient::Create(std::move(servers));
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  };
  CHECK(error({}) == "a cluster needs at least one server");
  CHECK(error({"a:1", "b"}) == "server \"b\": no :port");
  CHECK(error({"a:70000"}) == "server \"a:70000\": port \"70000\" is not in 1..65535");
  CHECK(error({"a:0"}) == "server \"a:0\": port \"0\" is not in 1..65535");
  CHECK(error({":7070"}) == "server \":7070\": no host");
  CHECK(error({"::1:7070"}) ==
        "server \"::1:7070\": an IPv6 host must be in brackets, as [::1]:7070");
  CHECK(error({"a:1", "a:1"}) == "server \"a:1\" is listed twice");
  ClusterOptions no_room;
  no_room.max_pending_batches = 0;
  CHECK(ClusterClient::Create({"a:1"}, no_room).status() ==
        absl::InvalidArgumentError("ClusterOptions.max_pending_batches must be positive, not 0"));
  ClusterOptions no_time;
  no_time.rpc_timeout = absl::ZeroDuration();
  CHECK(ClusterClient::Create({"a:1"}, no_time).status() ==
        absl::InvalidArgumentError("ClusterOptions.rpc_timeout must be positive, not 0"));

  absl::StatusOr<std::unique_ptr<ClusterClient>> ok =
      ClusterClient::Create({"10.0.0.1:7070", "[::1]:7071", "db.example.com:11211"});
  REQUIRE(ok.ok());
  CHECK((*ok)->servers().size() == 3);
}

// ---- Broadcasts and gathers ----

TEST_CASE("Segments are broadcast and queries gathered across the shards",
          "[client][cluster][query]") {
  TestCluster cluster;
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 90; ++i) updates.push_back(SetInt("m" + std::to_string(i), "age", i));
  Ingest(*cluster.client, std::move(updates));

  v1::PutSegmentRequest put;
  put.mutable_segment()->set_id("adults");
  put.mutable_segment()->set_rule("age >= 18");
  put.mutable_segment()->set_description("of age");
  absl::StatusOr<v1::PutSegmentResponse> created = cluster.client->PutSegment(put);
  REQUIRE(created.ok());
  CHECK(created->entered() == 72);
  CHECK(created->exited() == 0);
  CHECK(created->segment().member_count() == 72);

  // Defined on every shard, each with its own members.
  uint64_t members = 0;
  for (int s = 0; s < 3; ++s) {
    grpc::ClientContext context;
    v1::GetSegmentRequest request;
    request.set_id("adults");
    v1::Segment segment;
    REQUIRE(cluster.segments[s]->GetSegment(&context, request, &segment).ok());
    CHECK(segment.rule() == "age >= 18");
    CHECK(segment.member_count() < 72);
    members += segment.member_count();
  }
  CHECK(members == 72);

  v1::GetSegmentRequest get;
  get.set_id("adults");
  absl::StatusOr<v1::Segment> segment = cluster.client->GetSegment(get);
  REQUIRE(segment.ok());
  CHECK(segment->member_count() == 72);
  CHECK(segment->description() == "of age");

  PutSegment(*cluster.client, "seniors", "age >= 65");
  absl::StatusOr<v1::ListSegmentsResponse> list = cluster.client->ListSegments();
  REQUIRE(list.ok());
  REQUIRE(list->segments_size() == 2);
  CHECK(list->segments(0).id() == "adults");
  CHECK(list->segments(0).member_count() == 72);
  CHECK(list->segments(1).id() == "seniors");
  CHECK(list->segments(1).member_count() == 25);

  v1::CountRequest count;
  count.set_rule("age < 10");
  absl::StatusOr<v1::CountResponse> counted = cluster.client->Count(count);
  REQUIRE(counted.ok());
  CHECK(counted->matched() == 10);
  CHECK(counted->total() == 90);

  v1::ListMembersRequest list_members;
  list_members.set_segment("seniors");
  std::set<std::string> seniors;
  REQUIRE(cluster.client
              ->ListMembers(list_members,
                            [&](v1::MemberBatch& batch) {
                              for (const std::string& k : batch.keys()) seniors.insert(k);
                              return absl::OkStatus();
                            })
              .ok());
  std::set<std::string> want;
  for (int i = 65; i < 90; ++i) want.insert("m" + std::to_string(i));
  CHECK(seniors == want);

  // A sink's error stops the listing and comes back as is.
  const absl::Status stopped = cluster.client->ListMembers(
      list_members, [](v1::MemberBatch&) { return absl::AbortedError("enough"); });
  CHECK(stopped == absl::AbortedError("enough"));

  size_t exported = 0;
  REQUIRE(cluster.client
              ->Export([&](v1::ExportBatch& batch) {
                exported += batch.profiles_size();
                return absl::OkStatus();
              })
              .ok());
  CHECK(exported == 90);
  std::set<std::string> on_one;
  REQUIRE(cluster.client
              ->Export(
                  [&](v1::ExportBatch& batch) {
                    for (const v1::Profile& p : batch.profiles()) on_one.insert(p.key());
                    return absl::OkStatus();
                  },
                  1)
              .ok());
  CHECK_FALSE(on_one.empty());
  for (const std::string& key : on_one) CHECK(cluster.ShardOf(key) == 1);
  CHECK(cluster.client->Export([](v1::ExportBatch&) { return absl::OkStatus(); }, 3).code() ==
        absl::StatusCode::kInvalidArgument);

  v1::ExplainRequest explain;
  explain.set_key("m30");
  explain.set_segment("adults");
  absl::StatusOr<v1::ExplainResponse> explained = cluster.client->Explain(explain);
  REQUIRE(explained.ok());
  CHECK(explained->matched());

  v1::ValidateRuleRequest validate;
  validate.set_rule("age >=");
  absl::StatusOr<v1::ValidateRuleResponse> validated = cluster.client->ValidateRule(validate);
  REQUIRE(validated.ok());
  CHECK_FALSE(validated->ok());

  v1::DeleteSegmentRequest del;
  del.set_id("seniors");
  absl::StatusOr<v1::DeleteSegmentResponse> deleted = cluster.client->DeleteSegment(del);
  REQUIRE(deleted.ok());
  CHECK(deleted->exited() == 25);
  absl::StatusOr<v1::DeleteSegmentResponse> again = cluster.client->DeleteSegment(del);
  REQUIRE(again.status().code() == absl::StatusCode::kNotFound);
  CHECK(again.status().message().find("DeleteSegment on all 3 shards: ") == 0);
}

TEST_CASE("A rule error is reported once, with its position, when every shard agrees",
          "[client][cluster][query]") {
  TestCluster cluster;
  v1::PutSegmentRequest put;
  put.mutable_segment()->set_id("broken");
  put.mutable_segment()->set_rule("age >= (1");
  absl::StatusOr<v1::PutSegmentResponse> r = cluster.client->PutSegment(put);
  REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.status().message().find("PutSegment on all 3 shards: 1:") == 0);
}

TEST_CASE("Funnels and SetTime are summed and broadcast", "[client][cluster][query]") {
  TestCluster cluster;
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 30; ++i) {
    v1::ProfileUpdate u;
    u.set_key("f" + std::to_string(i));
    v1::Event* view = u.add_events();
    view->set_type("view");
    view->set_time(kT0 - 2 * kHour);
    if (i % 3 == 0) {
      v1::Event* buy = u.add_events();
      buy->set_type("buy");
      buy->set_time(kT0 - kHour);
    }
    updates.push_back(std::move(u));
  }
  Ingest(*cluster.client, std::move(updates));
  v1::FunnelRequest funnel;
  funnel.add_steps("view");
  funnel.add_steps("buy");
  absl::StatusOr<v1::FunnelResponse> f = cluster.client->Funnel(funnel);
  REQUIRE(f.ok());
  REQUIRE(f->counts_size() == 2);
  CHECK(f->counts(0) == 30);
  CHECK(f->counts(1) == 10);
  CHECK(f->total() == 30);

  v1::SetTimeRequest set_time;
  set_time.set_now(kT0 + 5 * kHour);
  absl::StatusOr<v1::SetTimeResponse> now = cluster.client->SetTime(set_time);
  REQUIRE(now.ok());
  CHECK(now->now() == kT0 + 5 * kHour);
  absl::StatusOr<ClusterStats> stats = cluster.client->GetStats();
  REQUIRE(stats.ok());
  for (const v1::Stats& s : stats->shards) CHECK(s.now() == kT0 + 5 * kHour);
  CHECK(stats->total.now() == kT0 + 5 * kHour);
  CHECK(stats->total.events() == 40);
  // The shards share this process, so each reports its CPU time; the total adds them.
  double cpu = 0;
  for (const v1::Stats& s : stats->shards) {
    CHECK(s.cpu_seconds() > 0);
    cpu += s.cpu_seconds();
  }
  CHECK(stats->total.cpu_seconds() == cpu);
}

TEST_CASE("SumShardStats sums counters, keeps the most segments and the earliest clock",
          "[client][cluster]") {
  v1::Stats a, b;
  a.set_profiles(3);
  a.set_events(10);
  a.set_segments(2);
  a.set_updates_applied(7);
  a.set_changes_emitted(5);
  a.set_memory_bytes(1000);
  a.set_cpu_seconds(1.5);
  a.set_now(kT0 + 10);
  a.set_incarnation(42);
  b = a;
  b.set_segments(3);
  b.set_now(kT0);
  b.set_cpu_seconds(0.25);
  CHECK(SumShardStats(std::vector<v1::Stats>{a}).now() == kT0 + 10);
  const v1::Stats total = SumShardStats(std::vector<v1::Stats>{a, b});
  CHECK(total.profiles() == 6);
  CHECK(total.events() == 20);
  CHECK(total.segments() == 3);
  CHECK(total.updates_applied() == 14);
  CHECK(total.changes_emitted() == 10);
  CHECK(total.memory_bytes() == 2000);
  CHECK(total.cpu_seconds() == 1.75);
  CHECK(total.now() == kT0);
  CHECK(total.incarnation() == 0);
}

TEST_CASE("A shard that is down makes a broadcast fail, naming it", "[client][cluster][failure]") {
  TestCluster cluster;
  const std::string down = cluster.addresses[0];
  cluster.Stop(0);

  v1::PutSegmentRequest put;
  put.mutable_segment()->set_id("adults");
  put.mutable_segment()->set_rule("age >= 18");
  absl::StatusOr<v1::PutSegmentResponse> r = cluster.client->PutSegment(put);
  REQUIRE(r.status().code() == absl::StatusCode::kUnavailable);
  const std::string message(r.status().message());
  INFO(message);
  CHECK(message.find("PutSegment failed on 1 of 3 shards (it succeeded on the others): " + down +
                     ": UNAVAILABLE: ") == 0);
  CHECK(message.find(cluster.addresses[1]) == std::string::npos);

  // It did succeed on the others.
  for (int s : {1, 2}) {
    grpc::ClientContext context;
    v1::GetSegmentRequest request;
    request.set_id("adults");
    v1::Segment segment;
    CHECK(cluster.segments[s]->GetSegment(&context, request, &segment).ok());
  }

  v1::CountRequest count;
  count.set_rule("age >= 18");
  absl::StatusOr<v1::CountResponse> counted = cluster.client->Count(count);
  REQUIRE(counted.status().code() == absl::StatusCode::kUnavailable);
  CHECK(counted.status().message().find("Count failed on 1 of 3 shards") == 0);

  // Routed calls to live shards work; ValidateRule passes over the dead first shard.
  const std::string live_key = cluster.KeysOn(1, 1)[0];
  const std::string dead_key = cluster.KeysOn(0, 1)[0];
  Ingest(*cluster.client, {SetInt(live_key, "age", 40)});
  v1::GetProfileRequest get;
  get.set_key(dead_key);
  absl::StatusOr<v1::Profile> unreachable = cluster.client->GetProfile(get);
  REQUIRE(unreachable.status().code() == absl::StatusCode::kUnavailable);
  CHECK(unreachable.status().message().find("GetProfile on " + down + ": ") == 0);
  v1::ValidateRuleRequest validate;
  validate.set_rule("age >= 18");
  absl::StatusOr<v1::ValidateRuleResponse> validated = cluster.client->ValidateRule(validate);
  REQUIRE(validated.ok());
  CHECK(validated->ok());

  // A batch with updates for the dead shard fails, saying which updates are in doubt.
  std::unique_ptr<Producer> producer = cluster.client->NewProducer();
  absl::StatusOr<v1::Ack> ack =
      producer->Send(Batch(9, {SetInt(live_key, "age", 41), SetInt(dead_key, "age", 1)})).get();
  REQUIRE(ack.status().code() == absl::StatusCode::kUnavailable);
  INFO(ack.status().message());
  CHECK(ack.status().message().find("batch seq=9: 1 of its 2 updates were not acked and may or "
                                    "may not have been applied (UNAVAILABLE: Ingest.Stream on " +
                                    down + ": ") == 0);
  CHECK(ack.status().message().find("the other 1 were acked: 1 applied, 0 rejected") !=
        std::string::npos);
  const absl::Status closed = producer->Close();
  CHECK(closed.code() == absl::StatusCode::kUnavailable);
  CHECK(closed.message().find("Ingest.Stream failed on 1 of 3 shards") == 0);
}

// A shard whose first `failures` GetStats and every PutSegment answer UNAVAILABLE, as a
// connection reset would: counts the calls that reached it.
class FlakyShard final : public v1::Admin::Service, public v1::Segments::Service {
 public:
  explicit FlakyShard(int failures) : failures_(failures) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(static_cast<v1::Admin::Service*>(this));
    builder.RegisterService(static_cast<v1::Segments::Service*>(this));
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
  }
  ~FlakyShard() override { server_->Shutdown(); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest*,
                        v1::Stats* stats) override {
    if (++stats_calls <= failures_) return {grpc::StatusCode::UNAVAILABLE, "connection reset"};
    stats->set_profiles(7);
    return grpc::Status::OK;
  }
  grpc::Status PutSegment(grpc::ServerContext*, const v1::PutSegmentRequest*,
                          v1::PutSegmentResponse*) override {
    ++put_calls;
    return {grpc::StatusCode::UNAVAILABLE, "connection reset"};
  }

  std::atomic<int> stats_calls{0};
  std::atomic<int> put_calls{0};

 private:
  const int failures_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_CASE("Reads are retried on UNAVAILABLE; writes are not", "[client][cluster][failure]") {
  SECTION("a read that fails twice then succeeds is answered") {
    FlakyShard shard(2);
    auto client = ClusterClient::Create({shard.address()}, testing::FastOptions());
    REQUIRE(client.ok());
    absl::StatusOr<ClusterStats> stats = (*client)->GetStats();
    REQUIRE(stats.ok());
    CHECK(stats->total.profiles() == 7);
    CHECK(shard.stats_calls == 3);
  }
  SECTION("a read gives up after 5 attempts, with the shard's status") {
    FlakyShard shard(100);
    auto client = ClusterClient::Create({shard.address()}, testing::FastOptions());
    REQUIRE(client.ok());
    absl::StatusOr<ClusterStats> stats = (*client)->GetStats();
    REQUIRE(stats.status().code() == absl::StatusCode::kUnavailable);
    CHECK(stats.status().message() == "GetStats on " + shard.address() + ": connection reset");
    CHECK(shard.stats_calls == 5);
  }
  SECTION("a write that fails UNAVAILABLE is tried once") {
    FlakyShard shard(0);
    auto client = ClusterClient::Create({shard.address()}, testing::FastOptions());
    REQUIRE(client.ok());
    v1::PutSegmentRequest put;
    put.mutable_segment()->set_id("adults");
    put.mutable_segment()->set_rule("age >= 18");
    CHECK((*client)->PutSegment(put).status().code() == absl::StatusCode::kUnavailable);
    CHECK(shard.put_calls == 1);
  }
}

}  // namespace
}  // namespace segd::client
