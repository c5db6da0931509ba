#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cluster.h"
#include "client/cluster_options.h"
#include "client/producer.h"
#include "client/replayer.h"
#include "client/ring.h"
#include "client/subscription.h"
#include "segd/v1/segd.grpc.pb.h"

namespace segd::client {

// Stats of a cluster: the sum over its shards (SumShardStats), and each shard's own.
struct ClusterStats {
  v1::Stats total;
  std::vector<v1::Stats> shards;  // by index in servers()
};

// The Stats of a cluster from its shards': profiles, events, updates_applied,
// changes_emitted, memory_bytes, cpu_seconds: summed; segments: the largest count (every
// shard should hold every segment); now: the earliest shard clock (0 without shards);
// incarnation: 0 (see the shards').
v1::Stats SumShardStats(std::span<const v1::Stats> shards);

// A client of a segd cluster (SPEC §6): a list of shards, each key on the shard the
// ketama ring maps it to.
//
//   - Updates go to their key's shard: Producer (NewProducer); full profiles too:
//     Replayer (NewReplayer).
//   - Segment changes are broadcast to every shard (PutSegment, DeleteSegment).
//   - Counts, funnels, member lists, stats and exports are gathered from the shards;
//     GetSegment and ListSegments too, so that member counts are the cluster's.
//   - GetProfile and Explain go to the key's shard; ValidateRule to the first shard that
//     answers.
//   - SetTime is broadcast; Subscribe merges every shard's change stream.
//
// Calls to several shards run in parallel, each with the rpc_timeout deadline. A call
// fails when it fails on any shard, with a status naming each failed shard and its
// status (ShardErrors); a broadcast may thus have been applied on the other shards —
// PutSegment and DeleteSegment may simply be retried. Reads (GetSegment, ListSegments,
// ValidateRule, the Query calls, GetStats) are themselves tried again, up to 5 attempts
// within the deadline, when a shard answers UNAVAILABLE (a failed connect, a reset);
// writes never are.
//
// Thread safety: thread-safe. Producers and Subscriptions may outlive the client.
class ClusterClient {
 public:
  // `servers`: "host:port" of each shard, in any order (the ring does not depend on
  // it). INVALID_ARGUMENT if the list is empty, or a server is not host:port with a port
  // in 1..65535, or appears twice, or if an option is out of range (a duration or size
  // that is not positive). Connects lazily: this does not wait for the servers.
  static absl::StatusOr<std::unique_ptr<ClusterClient>> Create(std::vector<std::string> servers,
                                                               ClusterOptions options = {});
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  const Ring& ring() const { return cluster_->ring; }
  const std::vector<std::string>& servers() const { return cluster_->ring.servers(); }

  // Streaming ingest into every shard; see Producer.
  std::unique_ptr<Producer> NewProducer() const;
  // Replays full profiles into their shards (or one shard); see Replayer.
  // INVALID_ARGUMENT if an option is out of range (streams_per_shard or message_bytes not
  // positive, only_shard not an index in servers()).
  absl::StatusOr<std::unique_ptr<Replayer>> NewReplayer(ReplayOptions options) const;

  // On every shard. entered/exited are summed, and so is the segment's member_count.
  absl::StatusOr<v1::PutSegmentResponse> PutSegment(const v1::PutSegmentRequest& request);
  // On every shard; exited is summed. A shard that does not have the segment counts as
  // done, so a retry after a partial failure succeeds; NOT_FOUND only if none had it.
  absl::StatusOr<v1::DeleteSegmentResponse> DeleteSegment(const v1::DeleteSegmentRequest& request);
  // From every shard: the first shard's definition, member_count summed, updated_at the
  // latest. NOT_FOUND (naming the shards) if any shard lacks it.
  absl::StatusOr<v1::Segment> GetSegment(const v1::GetSegmentRequest& request);
  // The union over the shards, sorted by id, member counts summed.
  absl::StatusOr<v1::ListSegmentsResponse> ListSegments();
  // From the first shard that answers (in servers() order): the rule language is the
  // same everywhere.
  absl::StatusOr<v1::ValidateRuleResponse> ValidateRule(const v1::ValidateRuleRequest& request);

  // From the key's shard.
  absl::StatusOr<v1::Profile> GetProfile(const v1::GetProfileRequest& request);
  absl::StatusOr<v1::ExplainResponse> Explain(const v1::ExplainRequest& request);
  // Summed over the shards (funnel counts step by step).
  absl::StatusOr<v1::CountResponse> Count(const v1::CountRequest& request);
  absl::StatusOr<v1::FunnelResponse> Funnel(const v1::FunnelRequest& request);
  // Every member, shard after shard: `sink` gets each batch as it arrives, on the
  // calling thread; a sink error stops the listing and is returned. On a shard's error
  // the sink has had the members of the shards before it.
  absl::Status ListMembers(const v1::ListMembersRequest& request,
                           absl::FunctionRef<absl::Status(v1::MemberBatch&)> sink);
  // Every profile of every shard (shard after shard), or of shard `shard` only (an index
  // in servers(); INVALID_ARGUMENT if out of range); `sink` as for ListMembers.
  absl::Status Export(absl::FunctionRef<absl::Status(v1::ExportBatch&)> sink,
                      std::optional<int> shard = std::nullopt);

  // On every shard; `now` is the earliest shard's answer.
  absl::StatusOr<v1::SetTimeResponse> SetTime(const v1::SetTimeRequest& request);
  absl::StatusOr<ClusterStats> GetStats();

  // Subscribes to every shard's change stream, merged (see Subscription). `segments` and
  // `snapshot` as for one server; `cursor` is a merged cursor (MergedBatch::batch.cursor)
  // of a subscription to the same servers, empty for "from now". INVALID_ARGUMENT if the
  // cursor is malformed or names other servers. With `snapshot` the cursor is ignored.
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(const v1::SubscribeRequest& request);

 private:
  explicit ClusterClient(std::shared_ptr<const Cluster> cluster) : cluster_(std::move(cluster)) {}

  std::shared_ptr<const Cluster> cluster_;
};

}  // namespace segd::client
