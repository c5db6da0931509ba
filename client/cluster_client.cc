#include "client/cluster_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/blocking_counter.h"
#include "client/cluster_cursor.h"
#include "client/shard_errors.h"

namespace segd::client {
namespace {

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// OK if `server` is "host:port" (the host may be a bracketed IPv6 address) with a port
// in 1..65535; else what is wrong with it.
absl::Status CheckServer(std::string_view server) {
  const size_t colon = server.rfind(':');
  if (colon == std::string_view::npos) return absl::InvalidArgumentError("no :port");
  const std::string_view host = server.substr(0, colon);
  const std::string_view port = server.substr(colon + 1);
  uint32_t number = 0;
  if (port.empty() || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(AsAbsl(port), &number) || number == 0 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port \"", AsAbsl(port), "\" is not in 1..65535"));
  }
  if (host.empty() || host == "[]") return absl::InvalidArgumentError("no host");
  if (host.front() != '[' && host.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError("an IPv6 host must be in brackets, as [::1]:7070");
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const ClusterOptions& o) {
  const std::pair<const char*, absl::Duration> durations[] = {
      {"rpc_timeout", o.rpc_timeout},
      {"stream_timeout", o.stream_timeout},
      {"reconnect_min_backoff", o.reconnect_min_backoff},
      {"reconnect_max_backoff", o.reconnect_max_backoff},
      {"idle_timeout", o.idle_timeout}};
  for (const auto& [name, d] : durations) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ClusterOptions.", name, " must be positive, not ", absl::FormatDuration(d)));
    }
  }
  if (o.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClusterOptions.max_message_bytes must be positive, not ", o.max_message_bytes));
  }
  if (o.max_pending_batches == 0) {
    return absl::InvalidArgumentError("ClusterOptions.max_pending_batches must be positive, not 0");
  }
  return absl::OkStatus();
}

// The channels' service config: a read that finds its shard's connection failing
// (UNAVAILABLE before it reached the server — a refused or reset loopback connect, a
// shard restarting) is tried again, up to 4 more times over about 1.5 s, within its
// deadline. Only reads: a write that fails UNAVAILABLE may have been applied, and its
// caller decides (Producer reports such updates as in doubt).
constexpr char kServiceConfig[] = R"json({
  "methodConfig": [{
    "name": [
      {"service": "segd.v1.Query"},
      {"service": "segd.v1.Segments", "method": "GetSegment"},
      {"service": "segd.v1.Segments", "method": "ListSegments"},
      {"service": "segd.v1.Segments", "method": "ValidateRule"},
      {"service": "segd.v1.Admin", "method": "GetStats"}
    ],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})json";

void SetTimeout(grpc::ClientContext& context, absl::Duration timeout) {
  if (timeout != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
}

template <typename Response>
struct Reply {
  absl::Status status;
  Response response;
};

using OnDone = std::function<void(grpc::Status)>;

// Starts one asynchronous unary call on every shard at once —
// start(shard, context, response, on_done) — each with the rpc_timeout deadline, and
// waits until all have answered.
template <typename Response, typename Start>
std::vector<Reply<Response>> CallEach(const Cluster& cluster, Start start) {
  const size_t n = cluster.shards.size();
  std::vector<Reply<Response>> replies(n);
  std::unique_ptr<grpc::ClientContext[]> contexts(new grpc::ClientContext[n]);
  absl::BlockingCounter left(static_cast<int>(n));
  for (size_t s = 0; s < n; ++s) {
    SetTimeout(contexts[s], cluster.options.rpc_timeout);
    start(cluster.shards[s], &contexts[s], &replies[s].response,
          [&replies, &left, s](grpc::Status status) {
            replies[s].status = FromGrpc(status);
            left.DecrementCount();
          });
  }
  left.Wait();
  return replies;
}

// The failures among `replies`, as one status (OK if none).
template <typename Response>
absl::Status Failures(std::string_view operation, const Cluster& cluster,
                      const std::vector<Reply<Response>>& replies) {
  ShardErrors errors(operation, replies.size());
  for (size_t s = 0; s < replies.size(); ++s)
    errors.Add(cluster.shards[s].address, replies[s].status);
  return errors.ToStatus();
}

// One blocking unary call to one shard: call(shard, context, response) -> grpc::Status.
template <typename Response, typename Call>
absl::StatusOr<Response> CallOne(const Cluster& cluster, int s, std::string_view operation,
                                 Call call) {
  grpc::ClientContext context;
  SetTimeout(context, cluster.options.rpc_timeout);
  Response response;
  const grpc::Status status = call(cluster.shards[s], &context, &response);
  if (!status.ok()) return AtShard(operation, cluster.shards[s].address, FromGrpc(status));
  return response;
}

// Reads one shard's server stream — open(context) starts it — into `sink`.
template <typename Batch, typename Open>
absl::Status ReadStream(const Cluster& cluster, int s, std::string_view operation, Open open,
                        absl::FunctionRef<absl::Status(Batch&)> sink) {
  grpc::ClientContext context;
  SetTimeout(context, cluster.options.stream_timeout);
  std::unique_ptr<grpc::ClientReader<Batch>> reader = open(cluster.shards[s], &context);
  Batch batch;
  absl::Status sunk;
  while (reader->Read(&batch)) {
    sunk = sink(batch);
    if (!sunk.ok()) {
      context.TryCancel();
      while (reader->Read(&batch)) {
      }
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!sunk.ok()) return sunk;
  return AtShard(operation, cluster.shards[s].address, FromGrpc(status));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClusterClient>> ClusterClient::Create(
    std::vector<std::string> servers, ClusterOptions options) {
  if (servers.empty()) return absl::InvalidArgumentError("a cluster needs at least one server");
  absl::flat_hash_set<std::string> seen;
  for (const std::string& server : servers) {
    if (absl::Status s = CheckServer(server); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("server \"", server, "\": ", s.message()));
    }
    if (!seen.insert(server).second) {
      return absl::InvalidArgumentError(absl::StrCat("server \"", server, "\" is listed twice"));
    }
  }
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // The channel reconnects on the same schedule as subscriptions retry.
  const auto ms = [](absl::Duration d) {
    return static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(d), std::numeric_limits<int>::max()));
  };
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, ms(options.reconnect_min_backoff));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, ms(options.reconnect_min_backoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, ms(options.reconnect_max_backoff));
  args.SetServiceConfigJSON(kServiceConfig);

  auto cluster = std::make_shared<Cluster>(Cluster{Ring(servers), options, {}});
  for (const std::string& server : servers) {
    ShardStubs stubs;
    stubs.address = server;
    stubs.channel = grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
    stubs.ingest = v1::Ingest::NewStub(stubs.channel);
    stubs.segments = v1::Segments::NewStub(stubs.channel);
    stubs.changes = v1::Changes::NewStub(stubs.channel);
    stubs.query = v1::Query::NewStub(stubs.channel);
    stubs.admin = v1::Admin::NewStub(stubs.channel);
    cluster->shards.push_back(std::move(stubs));
  }
  return std::unique_ptr<ClusterClient>(new ClusterClient(std::move(cluster)));
}

std::unique_ptr<Producer> ClusterClient::NewProducer() const {
  return std::unique_ptr<Producer>(new Producer(cluster_));
}

absl::StatusOr<std::unique_ptr<Replayer>> ClusterClient::NewReplayer(ReplayOptions options) const {
  if (options.streams_per_shard < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReplayOptions.streams_per_shard must be positive, not ", options.streams_per_shard));
  }
  if (options.message_bytes == 0) {
    return absl::InvalidArgumentError("ReplayOptions.message_bytes must be positive, not 0");
  }
  const int n = static_cast<int>(cluster_->shards.size());
  if (options.only_shard.has_value() && (*options.only_shard < 0 || *options.only_shard >= n)) {
    return absl::InvalidArgumentError(absl::StrCat("ReplayOptions.only_shard: shard ",
                                                   *options.only_shard, " is not in 0..", n - 1));
  }
  std::unique_ptr<Replayer> replayer(new Replayer(cluster_, std::move(options)));
  replayer->Start();
  return replayer;
}

// ---- Segments ----

absl::StatusOr<v1::PutSegmentResponse> ClusterClient::PutSegment(
    const v1::PutSegmentRequest& request) {
  auto replies = CallEach<v1::PutSegmentResponse>(
      *cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                     v1::PutSegmentResponse* response, OnDone done) {
        shard.segments->async()->PutSegment(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("PutSegment", *cluster_, replies); !s.ok()) return s;
  v1::PutSegmentResponse merged = replies[0].response;
  for (size_t s = 1; s < replies.size(); ++s) {
    const v1::PutSegmentResponse& r = replies[s].response;
    merged.set_entered(merged.entered() + r.entered());
    merged.set_exited(merged.exited() + r.exited());
    v1::Segment* segment = merged.mutable_segment();
    segment->set_member_count(segment->member_count() + r.segment().member_count());
    segment->set_updated_at(std::max(segment->updated_at(), r.segment().updated_at()));
  }
  return merged;
}

absl::StatusOr<v1::DeleteSegmentResponse> ClusterClient::DeleteSegment(
    const v1::DeleteSegmentRequest& request) {
  auto replies = CallEach<v1::DeleteSegmentResponse>(
      *cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                     v1::DeleteSegmentResponse* response, OnDone done) {
        shard.segments->async()->DeleteSegment(context, &request, response, std::move(done));
      });
  const bool none_had_it = std::all_of(replies.begin(), replies.end(), [](const auto& r) {
    return r.status.code() == absl::StatusCode::kNotFound;
  });
  ShardErrors errors("DeleteSegment", replies.size());
  v1::DeleteSegmentResponse merged;
  for (size_t s = 0; s < replies.size(); ++s) {
    const absl::Status& status = replies[s].status;
    if (status.code() == absl::StatusCode::kNotFound && !none_had_it) continue;
    errors.Add(cluster_->shards[s].address, status);
    merged.set_exited(merged.exited() + replies[s].response.exited());
  }
  if (!errors.empty()) return errors.ToStatus();
  return merged;
}

absl::StatusOr<v1::Segment> ClusterClient::GetSegment(const v1::GetSegmentRequest& request) {
  auto replies =
      CallEach<v1::Segment>(*cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                                           v1::Segment* response, OnDone done) {
        shard.segments->async()->GetSegment(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("GetSegment", *cluster_, replies); !s.ok()) return s;
  v1::Segment merged = replies[0].response;
  for (size_t s = 1; s < replies.size(); ++s) {
    merged.set_member_count(merged.member_count() + replies[s].response.member_count());
    merged.set_updated_at(std::max(merged.updated_at(), replies[s].response.updated_at()));
  }
  return merged;
}

absl::StatusOr<v1::ListSegmentsResponse> ClusterClient::ListSegments() {
  const v1::ListSegmentsRequest request;
  auto replies = CallEach<v1::ListSegmentsResponse>(
      *cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                     v1::ListSegmentsResponse* response, OnDone done) {
        shard.segments->async()->ListSegments(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("ListSegments", *cluster_, replies); !s.ok()) return s;
  std::map<std::string, v1::Segment> by_id;
  for (const Reply<v1::ListSegmentsResponse>& reply : replies) {
    for (const v1::Segment& segment : reply.response.segments()) {
      auto [it, inserted] = by_id.emplace(segment.id(), segment);
      if (inserted) continue;
      it->second.set_member_count(it->second.member_count() + segment.member_count());
      it->second.set_updated_at(std::max(it->second.updated_at(), segment.updated_at()));
    }
  }
  v1::ListSegmentsResponse merged;
  for (auto& [id, segment] : by_id) *merged.add_segments() = std::move(segment);
  return merged;
}

absl::StatusOr<v1::ValidateRuleResponse> ClusterClient::ValidateRule(
    const v1::ValidateRuleRequest& request) {
  ShardErrors unreachable("ValidateRule", cluster_->shards.size());
  for (size_t s = 0; s < cluster_->shards.size(); ++s) {
    grpc::ClientContext context;
    SetTimeout(context, cluster_->options.rpc_timeout);
    v1::ValidateRuleResponse response;
    const absl::Status status =
        FromGrpc(cluster_->shards[s].segments->ValidateRule(&context, request, &response));
    if (status.ok()) return response;
    if (status.code() != absl::StatusCode::kUnavailable &&
        status.code() != absl::StatusCode::kDeadlineExceeded) {
      return AtShard("ValidateRule", cluster_->shards[s].address, status);
    }
    unreachable.Add(cluster_->shards[s].address, status);
  }
  return unreachable.ToStatus();
}

// ---- Query ----

absl::StatusOr<v1::Profile> ClusterClient::GetProfile(const v1::GetProfileRequest& request) {
  return CallOne<v1::Profile>(
      *cluster_, cluster_->ring.ShardOf(request.key()), "GetProfile",
      [&](const ShardStubs& shard, grpc::ClientContext* context, v1::Profile* response) {
        return shard.query->GetProfile(context, request, response);
      });
}

absl::StatusOr<v1::ExplainResponse> ClusterClient::Explain(const v1::ExplainRequest& request) {
  return CallOne<v1::ExplainResponse>(
      *cluster_, cluster_->ring.ShardOf(request.key()), "Explain",
      [&](const ShardStubs& shard, grpc::ClientContext* context, v1::ExplainResponse* response) {
        return shard.query->Explain(context, request, response);
      });
}

absl::StatusOr<v1::CountResponse> ClusterClient::Count(const v1::CountRequest& request) {
  auto replies = CallEach<v1::CountResponse>(
      *cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                     v1::CountResponse* response, OnDone done) {
        shard.query->async()->Count(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("Count", *cluster_, replies); !s.ok()) return s;
  v1::CountResponse merged;
  for (const Reply<v1::CountResponse>& reply : replies) {
    merged.set_matched(merged.matched() + reply.response.matched());
    merged.set_total(merged.total() + reply.response.total());
  }
  return merged;
}

absl::StatusOr<v1::FunnelResponse> ClusterClient::Funnel(const v1::FunnelRequest& request) {
  auto replies = CallEach<v1::FunnelResponse>(
      *cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                     v1::FunnelResponse* response, OnDone done) {
        shard.query->async()->Funnel(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("Funnel", *cluster_, replies); !s.ok()) return s;
  v1::FunnelResponse merged = replies[0].response;
  for (size_t s = 1; s < replies.size(); ++s) {
    const v1::FunnelResponse& r = replies[s].response;
    if (r.counts_size() != merged.counts_size()) {
      return absl::InternalError(
          absl::StrCat("Funnel: ", cluster_->shards[s].address, " answered ", r.counts_size(),
                       " counts, ", cluster_->shards[0].address, " ", merged.counts_size()));
    }
    for (int k = 0; k < r.counts_size(); ++k) merged.set_counts(k, merged.counts(k) + r.counts(k));
    merged.set_total(merged.total() + r.total());
  }
  return merged;
}

absl::Status ClusterClient::ListMembers(const v1::ListMembersRequest& request,
                                        absl::FunctionRef<absl::Status(v1::MemberBatch&)> sink) {
  for (size_t s = 0; s < cluster_->shards.size(); ++s) {
    absl::Status status = ReadStream<v1::MemberBatch>(
        *cluster_, static_cast<int>(s), "ListMembers",
        [&](const ShardStubs& shard, grpc::ClientContext* context) {
          return shard.query->ListMembers(context, request);
        },
        sink);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ClusterClient::Export(absl::FunctionRef<absl::Status(v1::ExportBatch&)> sink,
                                   std::optional<int> shard) {
  const int n = static_cast<int>(cluster_->shards.size());
  if (shard.has_value() && (*shard < 0 || *shard >= n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Export: shard ", *shard, " is not in 0..", n - 1));
  }
  const v1::ExportRequest request;
  for (int s = shard.value_or(0); s < (shard.has_value() ? *shard + 1 : n); ++s) {
    absl::Status status = ReadStream<v1::ExportBatch>(
        *cluster_, s, "Export",
        [&](const ShardStubs& stubs, grpc::ClientContext* context) {
          return stubs.query->Export(context, request);
        },
        sink);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// ---- Admin ----

absl::StatusOr<v1::SetTimeResponse> ClusterClient::SetTime(const v1::SetTimeRequest& request) {
  auto replies = CallEach<v1::SetTimeResponse>(
      *cluster_, [&](const ShardStubs& shard, grpc::ClientContext* context,
                     v1::SetTimeResponse* response, OnDone done) {
        shard.admin->async()->SetTime(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("SetTime", *cluster_, replies); !s.ok()) return s;
  v1::SetTimeResponse merged = replies[0].response;
  for (const Reply<v1::SetTimeResponse>& reply : replies) {
    merged.set_now(std::min(merged.now(), reply.response.now()));
  }
  return merged;
}

absl::StatusOr<ClusterStats> ClusterClient::GetStats() {
  const v1::GetStatsRequest request;
  auto replies = CallEach<v1::Stats>(
      *cluster_,
      [&](const ShardStubs& shard, grpc::ClientContext* context, v1::Stats* response, OnDone done) {
        shard.admin->async()->GetStats(context, &request, response, std::move(done));
      });
  if (absl::Status s = Failures("GetStats", *cluster_, replies); !s.ok()) return s;
  ClusterStats stats;
  for (Reply<v1::Stats>& reply : replies) stats.shards.push_back(std::move(reply.response));
  stats.total = SumShardStats(stats.shards);
  return stats;
}

v1::Stats SumShardStats(std::span<const v1::Stats> shards) {
  v1::Stats t;
  if (!shards.empty()) t.set_now(shards.front().now());
  for (const v1::Stats& shard : shards) {
    t.set_profiles(t.profiles() + shard.profiles());
    t.set_events(t.events() + shard.events());
    t.set_segments(std::max(t.segments(), shard.segments()));
    t.set_updates_applied(t.updates_applied() + shard.updates_applied());
    t.set_changes_emitted(t.changes_emitted() + shard.changes_emitted());
    t.set_memory_bytes(t.memory_bytes() + shard.memory_bytes());
    t.set_cpu_seconds(t.cpu_seconds() + shard.cpu_seconds());
    t.set_now(std::min(t.now(), shard.now()));
  }
  return t;
}

// ---- Changes ----

absl::StatusOr<std::unique_ptr<Subscription>> ClusterClient::Subscribe(
    const v1::SubscribeRequest& request) {
  const size_t n = cluster_->shards.size();
  std::vector<Subscription::Position> positions(n);
  if (!request.cursor().empty()) {
    absl::StatusOr<ClusterCursor> cursor = ClusterCursor::Decode(request.cursor());
    if (!cursor.ok()) return cursor.status();
    std::vector<bool> found(n, false);
    for (const ClusterCursor::Shard& entry : cursor->shards) {
      const auto it = std::find(servers().begin(), servers().end(), entry.address);
      if (it == servers().end()) {
        return absl::InvalidArgumentError(absl::StrCat("cluster cursor: it holds a position for ",
                                                       entry.address,
                                                       ", not a server of this cluster"));
      }
      const size_t s = static_cast<size_t>(it - servers().begin());
      if (found[s]) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster cursor: two positions for ", entry.address));
      }
      found[s] = true;
      if (entry.cursor.empty()) {
        positions[s].state = Subscription::Position::State::kSnapshot;
      } else {
        positions[s].state = Subscription::Position::State::kCursor;
        positions[s].cursor = entry.cursor;
      }
    }
    for (size_t s = 0; s < n; ++s) {
      if (!found[s]) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster cursor: it holds no position for ", servers()[s]));
      }
    }
    if (request.snapshot()) positions.assign(n, Subscription::Position{});
  }
  v1::SubscribeRequest shard_request = request;
  shard_request.clear_cursor();
  std::unique_ptr<Subscription> subscription(
      new Subscription(cluster_, shard_request, std::move(positions)));
  subscription->Start();
  return subscription;
}

}  // namespace segd::client
