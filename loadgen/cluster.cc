#include "loadgen/cluster.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/cluster_client.h"
#include "client/ring.h"
#include "core/text.h"
#include "loadgen/workload.h"

namespace segd::load {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;  // segd's default --max-message-bytes

// Control calls wait this long; the slowest, a PutSegment over millions of profiles, takes
// seconds.
constexpr absl::Duration kControlDeadline = absl::Minutes(10);

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(kControlDeadline));
}

grpc::ChannelArguments ChannelArgs(bool own_connection) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // Channels with a local subchannel pool never share a connection with another channel.
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status, std::string_view where) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(AsAbsl(where), ": ", status.error_message()));
}

Cluster::Cluster(std::vector<std::string> servers) : servers_(std::move(servers)) {}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Connect(std::vector<std::string> servers,
                                                          absl::Duration timeout) {
  if (servers.empty()) return absl::InvalidArgumentError("no server given");
  if (servers.size() > 255) return absl::InvalidArgumentError("at most 255 servers");
  std::unique_ptr<Cluster> cluster(new Cluster(std::move(servers)));
  for (const std::string& server : cluster->servers_) {
    auto channel =
        grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), ChannelArgs(false));
    if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                   absl::ToChronoMilliseconds(timeout))) {
      return absl::UnavailableError(
          absl::StrCat(server, ": not reachable within ", absl::FormatDuration(timeout)));
    }
    cluster->segments_.push_back(v1::Segments::NewStub(channel));
    cluster->query_.push_back(v1::Query::NewStub(channel));
    cluster->admin_.push_back(v1::Admin::NewStub(channel));
    cluster->control_.push_back(std::move(channel));
  }
  return cluster;
}

std::vector<uint8_t> Cluster::ShardTable(uint64_t profiles) const {
  if (servers_.size() == 1) return {};
  const client::Ring ring(servers_);
  std::vector<uint8_t> table(profiles);
  // MD5 per key: split over the cores.
  const unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::string key;
      for (uint64_t n = t; n < profiles; n += threads) {
        key.clear();
        Workload::AppendKey(n, &key);
        table[n] = static_cast<uint8_t>(ring.ShardOf(key));
      }
    });
  }
  for (std::thread& w : workers) w.join();
  return table;
}

std::shared_ptr<grpc::Channel> Cluster::NewChannel(int server) const {
  return grpc::CreateCustomChannel(servers_[static_cast<size_t>(server)],
                                   grpc::InsecureChannelCredentials(), ChannelArgs(true));
}

absl::Status Cluster::ForEachServer(const std::function<absl::Status(int)>& call) const {
  if (servers_.size() == 1) return call(0);
  absl::Mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  for (int s = 0; s < size(); ++s) {
    threads.emplace_back([&, s] {
      absl::Status status = call(s);
      absl::MutexLock lock(&mu);
      if (first.ok()) first = std::move(status);
    });
  }
  for (std::thread& t : threads) t.join();
  return first;
}

absl::StatusOr<std::vector<v1::Stats>> Cluster::Stats() const {
  std::vector<v1::Stats> stats(servers_.size());
  absl::Status status = ForEachServer([&](int s) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return FromGrpc(admin_[s]->GetStats(&ctx, v1::GetStatsRequest(), &stats[s]),
                    absl::StrCat(servers_[s], ": GetStats"));
  });
  if (!status.ok()) return status;
  return stats;
}

absl::StatusOr<v1::Stats> Cluster::TotalStats() const {
  absl::StatusOr<std::vector<v1::Stats>> all = Stats();
  if (!all.ok()) return all.status();
  return client::SumShardStats(*all);
}

absl::StatusOr<std::vector<v1::PutSegmentResponse>> Cluster::PutSegment(
    const SegmentSpec& spec) const {
  std::vector<v1::PutSegmentResponse> responses(servers_.size());
  absl::Status status = ForEachServer([&](int s) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::PutSegmentRequest request;
    request.mutable_segment()->set_id(spec.id);
    request.mutable_segment()->set_rule(spec.rule);
    request.mutable_segment()->set_description(spec.description);
    return FromGrpc(segments_[s]->PutSegment(&ctx, request, &responses[s]),
                    absl::StrCat(servers_[s], ": PutSegment ", spec.id));
  });
  if (!status.ok()) return status;
  return responses;
}

absl::Status Cluster::DeleteSegment(const std::string& id) const {
  return ForEachServer([&](int s) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::DeleteSegmentRequest request;
    request.set_id(id);
    v1::DeleteSegmentResponse response;
    const grpc::Status status = segments_[s]->DeleteSegment(&ctx, request, &response);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) return absl::OkStatus();
    return FromGrpc(status, absl::StrCat(servers_[s], ": DeleteSegment ", id));
  });
}

absl::StatusOr<std::vector<std::string>> Cluster::SegmentIds() const {
  std::vector<std::vector<std::string>> ids(servers_.size());
  absl::Status status = ForEachServer([&](int s) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::ListSegmentsResponse response;
    absl::Status st =
        FromGrpc(segments_[s]->ListSegments(&ctx, v1::ListSegmentsRequest(), &response),
                 absl::StrCat(servers_[s], ": ListSegments"));
    for (const v1::Segment& segment : response.segments()) ids[s].push_back(segment.id());
    std::sort(ids[s].begin(), ids[s].end());
    return st;
  });
  if (!status.ok()) return status;
  std::vector<std::string> common = ids[0];
  for (size_t s = 1; s < ids.size(); ++s) {
    std::vector<std::string> both;
    std::set_intersection(common.begin(), common.end(), ids[s].begin(), ids[s].end(),
                          std::back_inserter(both));
    common = std::move(both);
  }
  return common;
}

absl::StatusOr<v1::FunnelResponse> Cluster::Funnel(const std::vector<std::string>& steps,
                                                   int64_t within_ms) const {
  std::vector<v1::FunnelResponse> responses(servers_.size());
  absl::Status status = ForEachServer([&](int s) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::FunnelRequest request;
    for (const std::string& step : steps) request.add_steps(step);
    request.set_within_ms(within_ms);
    return FromGrpc(query_[s]->Funnel(&ctx, request, &responses[s]),
                    absl::StrCat(servers_[s], ": Funnel"));
  });
  if (!status.ok()) return status;
  v1::FunnelResponse total;
  for (size_t i = 0; i < steps.size(); ++i) total.add_counts(0);
  for (const v1::FunnelResponse& r : responses) {
    for (int i = 0; i < r.counts_size() && i < total.counts_size(); ++i) {
      total.set_counts(i, total.counts(i) + r.counts(i));
    }
    total.set_total(total.total() + r.total());
  }
  return total;
}

}  // namespace segd::load
