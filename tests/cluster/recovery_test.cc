// Three real segd processes on a manual clock, fed the standard workload through the
// cluster client while a merged subscription watches. One shard is killed with SIGKILL
// mid-stream, restarted empty on its port, and rebuilt by `segctl recover` (the real
// binary) from an export taken before the fault; the producer then re-sends that shard's
// updates made after the export. The final memberships on every shard must equal those of
// a run without the fault — one in-process segd given the same inputs — and so must the
// merged change stream applied to an empty set, the recovered shard's re-snapshot applied
// as "drop its members, then add its SNAPSHOT ENTERs".
#include <atomic>
#include <catch2/catch.hpp>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "client/cluster_client.h"
#include "loadgen/workload.h"
#include "server/convert.h"
#include "server/server.h"
#include "tests/child_process.h"

namespace segd::testing {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kMinute = 60'000;
constexpr uint64_t kProfiles = 600;
constexpr int kRounds = 25;    // each: the clock moves on, then one batch of updates
constexpr int kPerRound = 40;  // updates per round
constexpr int64_t kRoundMs = 10 * kMinute;
constexpr int kExportAfter = 10;   // the export is taken after rounds 0..9
constexpr int kKillRound = 15;     // the shard is killed while this round is in flight
constexpr int kRestartAfter = 19;  // rounds 16..19 run with the shard down
constexpr int kVictim = 1;

using Membership = std::set<std::pair<std::string, std::string>>;  // (key, segment)

int64_t RoundTime(int r) { return kT0 + (r + 1) * kRoundMs; }

std::vector<std::string> SegdFlags() {
  return {"--clock=manual", "--start-time=" + std::to_string(kT0), "--shards=2",
          "--drain-seconds=1"};
}

client::ClusterOptions Options() {
  client::ClusterOptions o;
  o.rpc_timeout = absl::Seconds(10);
  o.reconnect_min_backoff = absl::Milliseconds(10);
  o.reconnect_max_backoff = absl::Milliseconds(200);
  o.idle_timeout = absl::Seconds(5);
  return o;
}

std::unique_ptr<client::ClusterClient> Connect(const std::vector<std::string>& servers) {
  absl::StatusOr<std::unique_ptr<client::ClusterClient>> c =
      client::ClusterClient::Create(servers, Options());
  REQUIRE(c.ok());
  return *std::move(c);
}

void Require(const absl::Status& status) {
  INFO(status.ToString());
  REQUIRE(status.ok());
}

// Every (key, segment) membership of `cluster`, asked segment by segment.
Membership MembersOf(client::ClusterClient& cluster, const std::vector<std::string>& segments) {
  Membership members;
  for (const std::string& id : segments) {
    v1::ListMembersRequest request;
    request.set_segment(id);
    Require(cluster.ListMembers(request, [&](v1::MemberBatch& batch) {
      for (const std::string& key : batch.keys()) members.emplace(key, id);
      return absl::OkStatus();
    }));
  }
  return members;
}

// What a subscriber knows: the merged change stream applied to an empty set. A
// re-snapshot of shard s drops the memberships of s's keys; its SNAPSHOT ENTERs follow.
class SubscriberView {
 public:
  SubscriberView(std::unique_ptr<client::Subscription> subscription, const client::Ring& ring)
      : subscription_(std::move(subscription)), ring_(ring), resnapshots_(ring.size(), 0) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SubscriberView() {
    subscription_->Cancel();
    thread_.join();
  }

  Membership members() const {
    absl::MutexLock lock(&mu_);
    return members_;
  }
  std::vector<std::string> problems() const {
    absl::MutexLock lock(&mu_);
    return problems_;
  }
  std::vector<int> resnapshots() const {
    absl::MutexLock lock(&mu_);
    return resnapshots_;
  }
  bool snapshot_done() const {
    absl::MutexLock lock(&mu_);
    return snapshot_done_;
  }

 private:
  void Run() {
    while (true) {
      absl::StatusOr<client::MergedBatch> step = subscription_->Next();
      if (!step.ok()) {
        if (step.status().code() != absl::StatusCode::kCancelled) {
          absl::MutexLock lock(&mu_);
          problems_.push_back("subscription ended: " + step.status().ToString());
        }
        return;
      }
      Apply(*step);
    }
  }

  void Apply(const client::MergedBatch& step) {
    absl::MutexLock lock(&mu_);
    switch (step.kind) {
      case client::MergedBatch::Kind::kChanges:
        for (const v1::Change& c : step.batch.changes()) {
          const auto membership = std::make_pair(c.key(), c.segment());
          if (ring_.ShardOf(c.key()) != step.shard) {
            problems_.push_back("a change of " + c.key() + " came from the wrong shard");
          }
          if (c.kind() == v1::CHANGE_KIND_ENTER) {
            if (!members_.insert(membership).second) {
              problems_.push_back("ENTER of a member: " + c.ShortDebugString());
            }
          } else if (members_.erase(membership) == 0) {
            problems_.push_back("EXIT of a non-member: " + c.ShortDebugString());
          }
        }
        snapshot_done_ |= step.batch.snapshot_done();
        break;
      case client::MergedBatch::Kind::kResnapshot:
        ++resnapshots_[step.shard];
        for (auto it = members_.begin(); it != members_.end();) {
          it = ring_.ShardOf(it->first) == step.shard ? members_.erase(it) : std::next(it);
        }
        break;
      case client::MergedBatch::Kind::kReconnecting:
        break;
    }
  }

  std::unique_ptr<client::Subscription> subscription_;
  const client::Ring& ring_;
  mutable absl::Mutex mu_;
  Membership members_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> problems_ ABSL_GUARDED_BY(mu_);
  std::vector<int> resnapshots_ ABSL_GUARDED_BY(mu_);
  bool snapshot_done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Waits up to `patience` for `done`.
template <typename Done>
bool Eventually(Done done, absl::Duration patience = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + patience;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

// The standard workload's inputs: preloaded profiles and one batch of updates per round.
struct Inputs {
  std::vector<v1::Profile> profiles;
  std::vector<v1::UpdateBatch> rounds;
  std::vector<std::string> segment_ids;
};

Inputs MakeInputs() {
  WorkloadOptions options;
  options.profiles = kProfiles;
  options.seed = 11;
  Workload workload(options);
  Inputs in;
  for (uint64_t n = 0; n < kProfiles; ++n) {
    server::ToProto(workload.MakeProfile(n, kT0), &in.profiles.emplace_back());
    in.profiles.back().clear_segments();
  }
  ProfileUpdate update;
  for (int r = 0; r < kRounds; ++r) {
    v1::UpdateBatch& batch = in.rounds.emplace_back();
    batch.set_seq(static_cast<uint64_t>(r + 1));
    for (int i = 0; i < kPerRound; ++i) {
      workload.NextUpdate(RoundTime(r), &update);
      server::ToProto(update, batch.add_updates());
    }
  }
  for (const SegmentSpec& spec : Workload::StandardSegments()) in.segment_ids.push_back(spec.id);
  return in;
}

void PutStandardSegments(client::ClusterClient& cluster) {
  for (const SegmentSpec& spec : Workload::StandardSegments()) {
    v1::PutSegmentRequest request;
    request.mutable_segment()->set_id(spec.id);
    request.mutable_segment()->set_rule(spec.rule);
    Require(cluster.PutSegment(request).status());
  }
}

void Replay(client::ClusterClient& cluster, const std::vector<v1::Profile>& profiles, bool quiet) {
  client::ReplayOptions options;
  options.quiet = quiet;
  options.message_bytes = 64 << 10;  // several messages per call
  absl::StatusOr<std::unique_ptr<client::Replayer>> replayer = cluster.NewReplayer(options);
  Require(replayer.status());
  for (const v1::Profile& p : profiles) Require((*replayer)->Add(p));
  absl::StatusOr<client::ReplayResult> result = (*replayer)->Finish();
  Require(result.status());
  REQUIRE(result->profiles == profiles.size());
  REQUIRE(result->errors.empty());
}

void SendAndCheck(client::Producer& producer, v1::UpdateBatch batch) {
  absl::StatusOr<v1::Ack> ack = producer.Send(std::move(batch)).get();
  Require(ack.status());
  REQUIRE(ack->errors().empty());
}

void SetTime(client::ClusterClient& cluster, int64_t now) {
  v1::SetTimeRequest request;
  request.set_now(now);
  Require(cluster.SetTime(request).status());
}

// The run without the fault: one in-process segd given every input once, in order, with
// its clock at the end time already (memberships depend only on the profiles and the
// time; every event of the run is at or before it).
Membership Expected(const Inputs& in, int64_t end_time) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.shards = 2;
  options.manual_clock = true;
  options.start_time_ms = kT0;
  absl::StatusOr<std::unique_ptr<server::Server>> server = server::Server::Start(options);
  Require(server.status());
  std::unique_ptr<client::ClusterClient> reference =
      Connect({"127.0.0.1:" + std::to_string((*server)->port())});
  SetTime(*reference, end_time);
  PutStandardSegments(*reference);
  Replay(*reference, in.profiles, /*quiet=*/true);
  std::unique_ptr<client::Producer> producer = reference->NewProducer();
  for (const v1::UpdateBatch& batch : in.rounds) SendAndCheck(*producer, batch);
  Require(producer->Close());
  return MembersOf(*reference, in.segment_ids);
}

TEST_CASE("A shard killed mid-stream and recovered by segctl ends as if it had never failed",
          "[cluster][recovery]") {
  const Inputs in = MakeInputs();
  const int64_t end_time = RoundTime(kRounds - 1) + 2 * 60 * kMinute;
  const Membership expected = Expected(in, end_time);
  REQUIRE(expected.size() > kProfiles);  // the workload makes many memberships

  TempDir dir;
  std::vector<std::unique_ptr<SegdProcess>> shards;
  std::vector<std::string> servers;
  for (int s = 0; s < 3; ++s) {
    shards.push_back(
        std::make_unique<SegdProcess>(dir, "shard" + std::to_string(s), 0, SegdFlags()));
    servers.push_back(shards.back()->address());
  }
  const std::string servers_flag = "--servers=" + absl::StrJoin(servers, ",");
  std::unique_ptr<client::ClusterClient> cluster = Connect(servers);

  v1::SubscribeRequest subscribe;
  subscribe.set_snapshot(true);
  absl::StatusOr<std::unique_ptr<client::Subscription>> subscription =
      cluster->Subscribe(subscribe);
  Require(subscription.status());
  SubscriberView view(*std::move(subscription), cluster->ring());
  REQUIRE(Eventually([&] { return view.snapshot_done(); }));

  PutStandardSegments(*cluster);
  Replay(*cluster, in.profiles, /*quiet=*/false);
  std::unique_ptr<client::Producer> producer = cluster->NewProducer();
  for (int r = 0; r < kExportAfter; ++r) {
    SetTime(*cluster, RoundTime(r));
    SendAndCheck(*producer, in.rounds[r]);
  }

  const std::string backup = dir.File("backup.jsonl");
  const Run exported = RunSegctl(dir, {"export", backup, servers_flag});
  INFO(exported);
  REQUIRE(exported.exit_code == 0);

  for (int r = kExportAfter; r < kKillRound; ++r) {
    SetTime(*cluster, RoundTime(r));
    SendAndCheck(*producer, in.rounds[r]);
  }
  // kill -9 while a batch is on its way; what the shard had is lost.
  SetTime(*cluster, RoundTime(kKillRound));
  std::future<absl::StatusOr<v1::Ack>> in_flight = producer->Send(in.rounds[kKillRound]);
  const int victim_port = shards[kVictim]->port();
  shards[kVictim]->KillHard();
  in_flight.get().IgnoreError();  // the victim's part may or may not have been acked
  for (int r = kKillRound + 1; r <= kRestartAfter; ++r) {
    v1::SetTimeRequest set;
    set.set_now(RoundTime(r));
    CHECK(cluster->SetTime(set).status().code() == absl::StatusCode::kUnavailable);
    absl::StatusOr<v1::Ack> ack = producer->Send(in.rounds[r]).get();
    CHECK(ack.status().code() == absl::StatusCode::kUnavailable);
    CHECK_THAT(std::string(ack.status().message()), Catch::Matchers::Contains(servers[kVictim]));
  }

  // Restarted empty on its port, then recovered: clock, segments, its share of the export.
  shards[kVictim] =
      std::make_unique<SegdProcess>(dir, "shard1-restarted", victim_port, SegdFlags());
  const Run recovered =
      RunSegctl(dir, {"recover", servers_flag, "--shard", servers[kVictim], "--from", backup});
  INFO(recovered);
  REQUIRE(recovered.exit_code == 0);
  CHECK_THAT(recovered.out, Catch::Matchers::Contains("segments: 20 put") &&
                                Catch::Matchers::Contains("recovered " + servers[kVictim]));

  // The producer re-sends the shard's updates made after the export, in order, once the
  // cluster's channel to the shard is connected again: it shares the channel that failed
  // while the shard was down, and gRPC fails a call at once (UNAVAILABLE, "failed to
  // connect") until its reconnect backoff, up to 200 ms here, has passed. A restart and
  // recovery on a fast machine take less than that.
  REQUIRE(Eventually([&] { return cluster->GetStats().ok(); }));
  for (int r = kExportAfter; r <= kRestartAfter; ++r) {
    v1::UpdateBatch again;
    again.set_seq(static_cast<uint64_t>(100 + r));
    for (const v1::ProfileUpdate& u : in.rounds[r].updates()) {
      if (cluster->ring().ShardOf(u.key()) == kVictim) *again.add_updates() = u;
    }
    SendAndCheck(*producer, std::move(again));
  }
  for (int r = kRestartAfter + 1; r < kRounds; ++r) {
    SetTime(*cluster, RoundTime(r));
    SendAndCheck(*producer, in.rounds[r]);
  }
  SetTime(*cluster, end_time);
  Require(producer->Close());

  // Every shard holds exactly the memberships of its keys in the run without the fault.
  for (int s = 0; s < 3; ++s) {
    Membership want;
    for (const auto& m : expected) {
      if (cluster->ring().ShardOf(m.first) == s) want.insert(m);
    }
    std::unique_ptr<client::ClusterClient> one = Connect({servers[s]});
    INFO("shard " << s << " at " << servers[s]);
    CHECK(MembersOf(*one, in.segment_ids) == want);
  }

  // The merged change stream comes to the same, and stays there.
  CHECK(Eventually([&] { return view.members() == expected; }));
  absl::SleepFor(absl::Milliseconds(2500));  // two heartbeats of every shard
  CHECK(view.members() == expected);
  CHECK(view.problems() == std::vector<std::string>{});
  const std::vector<int> resnapshots = view.resnapshots();
  CHECK(resnapshots[kVictim] >= 1);
  CHECK(resnapshots[0] == 0);
  CHECK(resnapshots[2] == 0);
}

}  // namespace
}  // namespace segd::testing
