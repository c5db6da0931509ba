#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "client/cluster_options.h"
#include "client/ring.h"
#include "segd/v1/segd.grpc.pb.h"

namespace segd::client {

// One shard: its address, and a stub of every service over one channel.
struct ShardStubs {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Ingest::Stub> ingest;
  std::unique_ptr<v1::Segments::Stub> segments;
  std::unique_ptr<v1::Changes::Stub> changes;
  std::unique_ptr<v1::Query::Stub> query;
  std::unique_ptr<v1::Admin::Stub> admin;
};

// What a ClusterClient shares with the Producers and Subscriptions it makes, which may
// outlive it: the ring, the options, and shards[i] for ring.servers()[i].
//
// Thread safety: immutable once built; gRPC stubs may be used from any thread.
struct Cluster {
  Ring ring;
  ClusterOptions options;
  std::vector<ShardStubs> shards;
};

}  // namespace segd::client
