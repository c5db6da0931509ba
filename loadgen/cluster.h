#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/segment_catalog.h"
#include "segd/v1/segd.grpc.pb.h"

namespace segd::load {

// The segd servers segload drives (one shard, or a cluster routed by the client library's
// ketama ring, SPEC §6): a control channel per server for unary calls, fresh channels with
// connections of their own for the data streams, and the control calls segload makes,
// run on every server in parallel.
//
// Errors name the server: `127.0.0.1:7070: PutSegment vip: ...`.
//
// Thread safety: all methods may be called from any thread.
class Cluster {
 public:
  // Connects to every server, waiting up to `timeout` for each.
  // REQUIRES: servers is not empty and has at most 255 entries.
  static absl::StatusOr<std::unique_ptr<Cluster>> Connect(std::vector<std::string> servers,
                                                          absl::Duration timeout);
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const std::vector<std::string>& servers() const { return servers_; }
  int size() const { return static_cast<int>(servers_.size()); }

  // For every key u{n}, n < profiles: the index of its server on the ketama ring. Empty for
  // a single server (everything goes to server 0).
  std::vector<uint8_t> ShardTable(uint64_t profiles) const;

  // A channel to servers()[server] over a TCP connection of its own, so that parallel
  // streams are not multiplexed onto one connection (and one server-side poller).
  std::shared_ptr<grpc::Channel> NewChannel(int server) const;

  absl::StatusOr<std::vector<v1::Stats>> Stats() const;
  // The sum over the servers (now: the first server's).
  absl::StatusOr<v1::Stats> TotalStats() const;
  absl::StatusOr<std::vector<v1::PutSegmentResponse>> PutSegment(const SegmentSpec& spec) const;
  // Deletes `id` everywhere; NOT_FOUND on a server counts as done.
  absl::Status DeleteSegment(const std::string& id) const;
  // The segment ids defined on every server (the intersection).
  absl::StatusOr<std::vector<std::string>> SegmentIds() const;
  // The funnel over the whole cluster: counts and totals summed over the servers.
  absl::StatusOr<v1::FunnelResponse> Funnel(const std::vector<std::string>& steps,
                                            int64_t within_ms) const;

 private:
  explicit Cluster(std::vector<std::string> servers);

  // Runs call(server) for every server on a thread each; the first error wins.
  absl::Status ForEachServer(const std::function<absl::Status(int)>& call) const;

  std::vector<std::string> servers_;
  std::vector<std::shared_ptr<grpc::Channel>> control_;
  std::vector<std::unique_ptr<v1::Segments::Stub>> segments_;
  std::vector<std::unique_ptr<v1::Query::Stub>> query_;
  std::vector<std::unique_ptr<v1::Admin::Stub>> admin_;
};

// `status` as an absl::Status whose message starts with `where`.
absl::Status FromGrpc(const grpc::Status& status, std::string_view where);

}  // namespace segd::load
